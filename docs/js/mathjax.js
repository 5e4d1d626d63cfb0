// MathJax 3 for pymdownx.arithmatex (generic: true): it typesets what arithmatex marks
// ($...$ inline, $$...$$ display, written out as \(...\) and \[...\]) and nothing else,
// again after each page change of the Material theme's instant navigation.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
