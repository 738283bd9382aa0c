// Request logs: a row's Details opens in a drawer (a modal <dialog>) over the
// table instead of a new page; without this file the link opens the page.
"use strict";

(() => {
  const drawer = document.getElementById("log-drawer");
  if (!drawer || typeof drawer.showModal !== "function") return;
  const body = document.getElementById("log-drawer-body");
  const title = document.getElementById("log-drawer-title");

  async function open(link) {
    title.textContent = "Loading…";
    body.replaceChildren();
    drawer.showModal();
    try {
      const response = await fetch(link.href, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      title.textContent = page.querySelector(".page-header h1").textContent;
      body.replaceChildren(...page.querySelectorAll("[data-log-section]"));
    } catch (error) {
      title.textContent = "This request could not be loaded";
      body.textContent = `${error.message}. Open it on its own page: ${link.href}`;
    }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-drawer]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    open(link);
  });
  document.getElementById("log-drawer-close").addEventListener("click", () => drawer.close());
})();
