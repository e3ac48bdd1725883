"""The browser the tests drive (Debian's chromium) and what they ask of a page in it."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


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
