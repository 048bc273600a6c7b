// The confirmation page: once a person actually sees it (the document is visible), submit the
// confirming form by itself, so the link in the mail is the one deliberate click. Mail scanners
// that fetch the link run no script or never show the page, and a bare GET confirms nothing.
(function () {
    "use strict";
    var form = document.querySelector("form[data-auto-submit]");
    if (!form) {
        return;
    }
    var sent = false;
    function submitWhenVisible() {
        if (sent || document.visibilityState !== "visible") {
            return;
        }
        sent = true;
        var button = form.querySelector("button");
        if (button) {
            button.disabled = true;
        }
        form.submit();
    }
    document.addEventListener("visibilitychange", submitWhenVisible);
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", submitWhenVisible);
    } else {
        submitWhenVisible();
    }
})();
