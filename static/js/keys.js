// Keyboard shortcuts for the back office. Everything here is also reachable with plain
// links and buttons; this only saves hands from the mouse.
//   Queue:  j / k  move down / up,  Enter or o  open the ticket,  x  tick the row for a bulk action
//   Ticket: a  choose "approve" and focus the button (Enter confirms),  g q  back to the queue
(function () {
  "use strict";
  let pendingG = false;

  function typing(target) {
    return target.closest("input, textarea, select, button, [contenteditable='true']") !== null;
  }

  function rows() {
    return Array.from(document.querySelectorAll("tr[data-row]"));
  }

  function select(index) {
    const all = rows();
    if (!all.length) return;
    const i = Math.max(0, Math.min(all.length - 1, index));
    all.forEach((row, n) => row.classList.toggle("selected", n === i));
    const link = all[i].querySelector("a");
    if (link) link.focus();
  }

  function current() {
    return rows().findIndex((row) => row.classList.contains("selected"));
  }

  document.addEventListener("keydown", function (event) {
    if (event.metaKey || event.ctrlKey || event.altKey || typing(event.target)) {
      if (!(event.target.tagName === "A" && event.target.closest("tr[data-row]"))) return;
    }
    const key = event.key;
    if (pendingG) {
      pendingG = false;
      if (key === "q") {
        const queue = document.querySelector("[data-queue-link]");
        if (queue) window.location.assign(queue.getAttribute("href"));
      }
      return;
    }
    if (key === "g") { pendingG = true; return; }
    if (key === "j") { select(current() + 1); event.preventDefault(); return; }
    if (key === "k") { select(current() < 0 ? 0 : current() - 1); event.preventDefault(); return; }
    if (key === "x") {
      const row = rows()[current()];
      const box = row && row.querySelector("input[type='checkbox'][name='tickets']");
      if (box) { box.checked = !box.checked; event.preventDefault(); }
      return;
    }
    if (key === "o") {
      const row = rows()[current()];
      const link = row && row.querySelector("a");
      if (link) window.location.assign(link.getAttribute("href"));
      return;
    }
    if (key === "a") {
      const approve = document.querySelector("input[name='action'][value='approve']");
      const submit = document.querySelector("[data-decide]");
      if (approve && submit) {
        approve.checked = true;
        submit.focus();
        event.preventDefault();
      }
    }
  });
})();
