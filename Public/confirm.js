// The confirmation page: the button confirms. The page also submits itself, but only for what
// looks like a person: the page is visible, the browser is not driven by automation
// (`navigator.webdriver`), and the visitor has moved a pointer, touched the screen or pressed a
// key. Mail scanners that open links, even those that run scripts in a headless browser, do none
// of that; and the server leaves this script out altogether in the first minutes after the mail
// went out, when a scanner is far likelier than a person. A bare GET never confirms.
(function () {
    "use strict";
    var form = document.querySelector("form[data-auto-submit]");
    if (!form || navigator.webdriver === true) {
        return;
    }
    var sent = false;
    function submitForAPerson() {
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
    ["pointermove", "pointerdown", "touchstart", "keydown"].forEach(function (name) {
        window.addEventListener(name, submitForAPerson, { passive: true });
    });
})();
