// The signup form's stamp belongs to one page load and is spent by the signup it admits. A page
// the browser shows again from its back-forward cache (Back, after sending the form, to mend the
// address) still holds the spent stamp: ask for a new one, which counts from the same page.
(function () {
    "use strict";
    window.addEventListener("pageshow", function (event) {
        if (!event.persisted) {
            return;
        }
        document.querySelectorAll("form.signup").forEach(function (form) {
            var stamp = form.querySelector('input[name="stamp"]');
            var course = form.querySelector('input[name="course"]');
            if (!stamp || !course) {
                return;
            }
            var url = "/courses/" + encodeURIComponent(course.value) + "/stamp?after=" + encodeURIComponent(stamp.value);
            fetch(url, { cache: "no-store", credentials: "same-origin" })
                .then(function (response) {
                    return response.ok ? response.text() : null;
                })
                .then(function (fresh) {
                    if (fresh) {
                        stamp.value = fresh.trim();
                    }
                })
                .catch(function () {
                    // Offline: the form keeps its stamp; the "check your inbox" page links to a fresh form.
                });
        });
    });
})();
