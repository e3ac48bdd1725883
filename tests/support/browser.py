"""The browser the tests drive (Debian's chromium), its contexts, and what they ask of a
page in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.waiting import PATIENCE_SECONDS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Playwright's own default (30 s for an action or a page load) is a fixed deadline that a
# loaded machine can miss; its waits end with their event, so the cap can be generous.
PATIENCE_MS = PATIENCE_SECONDS * 1000


def new_context(browser: Any, **options: Any) -> Any:
    """`browser.new_context(**options)` whose actions, waits and page loads wait up to the
    suite's cap."""
    context = browser.new_context(**options)
    context.set_default_timeout(PATIENCE_MS)
    context.set_default_navigation_timeout(PATIENCE_MS)
    return context


# Every element with its own text, with its computed colour, the first non-transparent
# background behind it, its font size and whether a reader can see it at all.
TEXT_STYLES_SCRIPT = """
() => {
  const visible = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.display === 'none' || style.visibility === 'hidden' || style.opacity === '0') {
        return false;
      }
    }
    return true;
  };
  const backgroundOf = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const colour = getComputedStyle(node).backgroundColor;
      if (colour && colour !== 'transparent' && colour !== 'rgba(0, 0, 0, 0)') return colour;
    }
    return 'rgb(255, 255, 255)';
  };
  const results = [];
  for (const el of document.body.querySelectorAll('*')) {
    const ownText = Array.from(el.childNodes)
      .filter((node) => node.nodeType === Node.TEXT_NODE)
      .map((node) => node.textContent.trim())
      .join('');
    if (!ownText || !visible(el)) continue;
    const style = getComputedStyle(el);
    results.push({
      tag: el.tagName.toLowerCase(),
      className: el.className,
      text: ownText.slice(0, 60),
      color: style.color,
      background: backgroundOf(el),
      fontSize: parseFloat(style.fontSize),
    });
  }
  return results;
}
"""


# The landmarks of a page as axe-core's rules landmark-one-main and region see them: how
# many main landmarks there are, and the visible text that is in no landmark at all.
LANDMARKS_SCRIPT = """
() => {
  const landmark = [
    'main', '[role=main]', 'header', '[role=banner]', 'footer', '[role=contentinfo]',
    'nav', '[role=navigation]', 'aside', '[role=complementary]', '[role=search]',
    'section[aria-label]', 'section[aria-labelledby]', '[role=region][aria-label]',
    '[role=region][aria-labelledby]', 'form[aria-label]', 'form[aria-labelledby]',
  ].join(',');
  const visible = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.display === 'none' || style.visibility === 'hidden') return false;
    }
    return true;
  };
  const outside = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const parent = node.parentElement;
    if (text && parent && visible(parent) && !parent.closest(landmark)) {
      outside.push(text.slice(0, 60));
    }
  }
  return {
    mains: document.querySelectorAll('main, [role=main]').length,
    mainElements: document.querySelectorAll('main').length,
    outside: outside,
  };
}
"""
