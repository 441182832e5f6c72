// While a queued Check now is pending, reload the page now and then to show its result when it ends.
(function () {
  "use strict";
  var pending = document.getElementById("check-pending");
  if (!pending) {
    return;
  }
  var seconds = Number(pending.dataset.reloadSeconds) || 3;
  window.setTimeout(function () {
    window.location.reload();
  }, seconds * 1000);
})();
