// The waitlist's embed for the school's own pages:
//   <script src="BASE/embed.js" data-course="SLUG" data-lang="en" async></script>
// puts the course's form, in an <iframe> from BASE, where the script stands, and keeps the frame
// as tall as its content. The frame tells its height with postMessage; only messages from BASE's
// origin and from this frame are believed. Sizes are set through the DOM's style property, which a
// strict Content-Security-Policy on the host page allows.
(function () {
    "use strict";
    var script = document.currentScript;
    if (!script || !script.src) {
        return;
    }
    var course = script.getAttribute("data-course");
    if (!course) {
        console.error("waitlist embed: the script needs data-course=\"SLUG\".");
        return;
    }
    var origin = new URL(script.src).origin;
    var lang = script.getAttribute("data-lang");
    var source = new URL("/embed/" + encodeURIComponent(course), origin);
    if (lang) {
        source.searchParams.set("lang", lang);
    }
    var frame = document.createElement("iframe");
    frame.src = source.href;
    frame.title = lang === "en" ? "Enrolment notice sign-up" : "Подписка на новость о записи";
    frame.className = "waitlist-embed";
    frame.style.display = "block";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.height = "10rem";
    script.parentNode.insertBefore(frame, script.nextSibling);

    window.addEventListener("message", function (event) {
        if (event.origin !== origin || event.source !== frame.contentWindow) {
            return;
        }
        var data = event.data;
        if (!data || data.type !== "waitlist:height" || typeof data.height !== "number" || !isFinite(data.height)) {
            return;
        }
        frame.style.height = Math.min(Math.max(Math.ceil(data.height), 0), 4000) + "px";
    });
})();
