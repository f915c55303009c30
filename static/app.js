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
