// Inside the embed's frame: tells the page around it how tall the frame's content is, whenever
// that changes, so that `/embed.js` can size the frame. Only a height is sent; it goes to the
// parent's origin where the browser names it, else to any (a height tells nothing).
(function () {
    "use strict";
    if (window.parent === window) {
        return;
    }
    var ancestors = window.location.ancestorOrigins;
    var target = ancestors && ancestors.length > 0 && ancestors[0] !== "null" ? ancestors[0] : "*";
    var last = -1;
    function tell() {
        var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
        if (height !== last) {
            last = height;
            window.parent.postMessage({ type: "waitlist:height", height: height }, target);
        }
    }
    function start() {
        tell();
        if (typeof ResizeObserver === "function") {
            new ResizeObserver(tell).observe(document.body);
        } else {
            window.addEventListener("resize", tell);
        }
    }
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
    window.addEventListener("load", tell);
})();
