// Small conveniences on top of htmx. Everything works without this file.
document.addEventListener("keydown", (event) => {
  // "/" jumps to the page's filter box, as in GitHub or Gmail.
  if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey) {
    const target = event.target;
    if (target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) {
      return;
    }
    const search = document.querySelector("[data-filter-focus]");
    if (search instanceof HTMLElement) {
      event.preventDefault();
      search.focus();
    }
  }
});

// Forms marked data-confirm ask first (no inline JavaScript, so no escaping pitfalls).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// The device list's "select every device on this page" box.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (box instanceof HTMLInputElement && box.hasAttribute("data-select-all")) {
    const table = box.closest("table");
    table?.querySelectorAll('input[name="device_ids"]').forEach((row) => {
      row.checked = box.checked;
    });
  }
});

// After a redirect, move focus to the message the action left, so screen readers read it
// and keyboard users start from there.
document.addEventListener("DOMContentLoaded", () => {
  const flash = document.querySelector("#flash .flash");
  if (flash instanceof HTMLElement) {
    flash.focus({ preventScroll: true });
  }
});

// Copy buttons next to a secret shown once (a new API token, a generated password).
document.addEventListener("click", async (event) => {
  const button = event.target;
  if (!(button instanceof HTMLButtonElement) || button.dataset.copy === undefined) {
    return;
  }
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    button.textContent = "Copied";
  } catch {
    // No clipboard (plain http, old browser): select the text so Ctrl+C works.
    const code = button.previousElementSibling;
    if (code) {
      window.getSelection()?.selectAllChildren(code);
    }
    button.textContent = "Press Ctrl+C";
  }
});
