// Progressive enhancements; every page works without this file.
"use strict";

function copyTarget(button) {
  const target = document.querySelector(button.dataset.copy);
  if (!target || !navigator.clipboard) return;
  navigator.clipboard.writeText(target.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (button) copyTarget(button);
});

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

function setUpMenu() {
  const button = document.getElementById("menu-button");
  if (!button) return;
  const sidebar = button.closest(".sidebar");
  sidebar.dataset.menu = "closed";
  button.hidden = false;
  const show = (open) => {
    sidebar.dataset.menu = open ? "open" : "closed";
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => show(sidebar.dataset.menu === "closed"));
  sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && sidebar.dataset.menu === "open") {
      show(false);
      button.focus();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((button) => { button.hidden = !navigator.clipboard; });
  setUpMenu();
});
