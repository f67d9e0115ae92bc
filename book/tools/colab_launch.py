"""Sphinx extension: point the book's Colab launch buttons at the Colab editions.

The Colab edition of each chapter (``make editions``) replaces MyST directives, which Colab would
show as raw text, with plain Markdown. The publishing workflow pushes those editions to the branch
named by ``wm_colab_branch`` (in ``_config.yml``, under ``sphinx.config``), at the same paths as the
sources; this extension rewrites the launch buttons' ``.../blob/<branch>/...`` accordingly.
"""

from __future__ import annotations


def _rewrite(buttons, source: str, target: str) -> None:
    for button in buttons:
        if isinstance(button, dict):
            url = button.get("url")
            if isinstance(url, str) and "colab.research.google.com" in url:
                button["url"] = url.replace(source, target, 1)
            _rewrite(button.get("buttons", []), source, target)


def _retarget(app, pagename, templatename, context, doctree) -> None:
    target = app.config.wm_colab_branch
    if not target:
        return
    opts = app.config.html_theme_options or {}
    branch = opts.get("repository_branch") or "main"
    _rewrite(context.get("header_buttons", []), f"/blob/{branch}/", f"/blob/{target}/")


def setup(app):
    app.add_config_value("wm_colab_branch", "", "html")
    app.connect("html-page-context", _retarget, priority=900)  # after sphinx-book-theme adds them
    return {"parallel_read_safe": True, "parallel_write_safe": True}
