// Refreshes the queue panel every 30 s, unless a form in it is open (a snooze being filled in).
// htmx listens for the "queue-refresh" event on the panel (hx-trigger), so no script is inline.
(function () {
  setInterval(function () {
    var panel = document.getElementById("queue-panel");
    if (panel && window.htmx && !panel.querySelector("details[open]")) {
      window.htmx.trigger(panel, "queue-refresh");
    }
  }, 30000);
})();
