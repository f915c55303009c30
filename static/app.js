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
  if (focusFirstInvalid(document)) {
    return;
  }
  const flash = document.querySelector("#flash .flash");
  if (flash instanceof HTMLElement) {
    flash.focus({ preventScroll: true });
  }
});

// A form shown again with errors puts the cursor on the first field to fix, not on the
// field `autofocus` names: the error summary above it is announced as an alert anyway.
function focusFirstInvalid(root) {
  for (const field of root.querySelectorAll('[aria-invalid="true"]')) {
    // Skip fields of a job type not chosen (hidden), and fieldsets, which take no focus.
    const target = field.matches("fieldset") ? field.querySelector("input, select, textarea") : field;
    if (target instanceof HTMLElement && target.getClientRects().length > 0) {
      target.focus();
      return true;
    }
  }
  return false;
}
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.target instanceof HTMLElement && event.target.querySelector("form")) {
    focusFirstInvalid(event.target);
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

// Relative times ("12 s ago") stay true on an open page: each <time data-ago> is redrawn
// from its datetime, with the server's wording. The exact time is in its title.
function ago(datetime) {
  const secs = Math.floor((Date.now() - Date.parse(datetime)) / 1000);
  if (Number.isNaN(secs)) return null;
  if (secs < 0) return "just now";
  if (secs < 60) return `${secs} s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  return datetime.slice(0, 10);
}
function refreshTimes() {
  document.querySelectorAll("time[data-ago]").forEach((el) => {
    const text = ago(el.getAttribute("datetime") || "");
    if (text !== null && el.textContent !== text) el.textContent = text;
  });
}
setInterval(refreshTimes, 10000);

// On a narrow screen the navigation folds behind its "Menu" button (without this file it
// simply wraps).
const nav = document.querySelector("header nav");
const navToggle = nav?.querySelector(".nav-toggle");
if (nav && navToggle) {
  nav.classList.add("collapsible");
  navToggle.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    navToggle.setAttribute("aria-expanded", String(open));
  });
}

// The job log follows new lines while the reader is at its end; scrolled up to read, it
// stays put.
let logAtEnd = true;
// (htmx's SSE extension announces its swaps on the element: before, then after.)
for (const before of ["htmx:beforeSwap", "htmx:sseBeforeMessage"]) {
  document.addEventListener(before, (event) => {
    const log = event.detail?.target ?? event.target;
    if (log instanceof HTMLElement && log.id === "job-log") {
      logAtEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    }
  });
}
for (const after of ["htmx:afterSwap", "htmx:sseMessage"]) {
  document.addEventListener(after, (event) => {
    const log = event.detail?.target ?? event.target;
    if (log instanceof HTMLElement && log.id === "job-log" && logAtEnd) {
      log.scrollTop = log.scrollHeight;
    }
  });
}
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("job-log");
  if (log) log.scrollTop = log.scrollHeight;
});

// The device list's bulk bar says how many devices it would act on, and its buttons wait
// until there is at least one (without this file the server says so instead).
function updateBulkBar() {
  const bar = document.getElementById("bulk");
  if (!bar) return;
  const all = bar.querySelector('input[name="all_matching"]');
  const checked = document.querySelectorAll('input[name="device_ids"][form="bulk"]:checked').length;
  const total = all?.dataset.total ?? "0";
  const text = all?.checked ? `All ${Number.parseInt(total, 10).toLocaleString("en")}${total.endsWith("+") ? "+" : ""} matching selected` : `${checked} selected`;
  const output = bar.querySelector(".selected-count");
  if (output && output.textContent !== text) output.textContent = text;
  const none = !all?.checked && checked === 0;
  bar.querySelectorAll("[data-needs-selection]").forEach((button) => {
    button.disabled = none;
  });
}
document.addEventListener("change", (event) => {
  if (event.target instanceof HTMLInputElement && (event.target.name === "device_ids" || event.target.name === "all_matching" || event.target.hasAttribute("data-select-all"))) {
    updateBulkBar();
  }
});
document.addEventListener("DOMContentLoaded", updateBulkBar);

// The row checkboxes are one stop in the Tab order, not one per row (a grid's "roving
// tab index"): Tab reaches the last one used, ↑/↓ (and Home/End) move between rows, Space
// ticks. A row's other stop is its device link; the region link is there for the mouse
// and on the device's page. Without this file every checkbox is a Tab stop.
function rowBoxes() {
  return [...document.querySelectorAll('input[name="device_ids"][form="bulk"]')];
}
function setRovingStop(current) {
  for (const box of rowBoxes()) box.tabIndex = box === current ? 0 : -1;
}
document.addEventListener("DOMContentLoaded", () => {
  const boxes = rowBoxes();
  if (boxes.length === 0) return;
  setRovingStop(boxes[0]);
  document.querySelectorAll('[data-testid="devices-table"] tbody a[data-secondary-link]').forEach((a) => {
    a.tabIndex = -1;
  });
});
document.addEventListener("focusin", (event) => {
  const box = event.target;
  if (box instanceof HTMLInputElement && box.name === "device_ids" && box.form?.id === "bulk") setRovingStop(box);
});
document.addEventListener("keydown", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.name !== "device_ids" || box.form?.id !== "bulk") return;
  const boxes = rowBoxes();
  const at = boxes.indexOf(box);
  const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: boxes.length - 1 }[event.key];
  if (to === undefined || !boxes[to]) return;
  event.preventDefault();
  boxes[to].focus();
});

// Filter forms send only the filters given, so that their URLs stay short and readable
// (`/devices?site=par`, not every empty field). Fields disabled for the submission are
// enabled again when the browser shows the page from its history.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method !== "get" || !form.classList.contains("filters")) return;
  for (const field of form.elements) {
    if ((field instanceof HTMLInputElement || field instanceof HTMLSelectElement) && field.name && field.value.trim() === "") {
      field.disabled = true;
    }
  }
});
window.addEventListener("pageshow", () => {
  document.querySelectorAll("form.filters [name]:disabled").forEach((field) => {
    field.disabled = false;
  });
});

// Choosing a page size applies it at once, as the sort links do; the filter's other fields
// go with it.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.name === "page_size" && field.form?.classList.contains("filters")) {
    field.form.requestSubmit();
  }
});

// Live updates are morphed into the page (idiomorph): what a reader opened stays open.
if (window.Idiomorph) {
  window.Idiomorph.defaults.callbacks.beforeAttributeUpdated = (name, element) =>
    !(name === "open" && element instanceof HTMLDetailsElement);
}
