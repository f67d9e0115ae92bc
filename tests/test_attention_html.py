"""wmlib.viz.attention_html: a self-contained, offline, interactive attention view."""

import json
import re
import shutil

import numpy as np
import pytest
import torch

from wmlib.viz import attention_html

TOKENS = ["[CLS]", "i", "love", "dogs", ".", "[SEP]"]


def causal_weights(layers=2, heads=3, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(layers, heads, L, L, generator=g).masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), -1e9)
    return torch.softmax(s, -1)


def embedded(html):
    blob = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob)


def test_self_contained_and_offline():
    html = attention_html(TOKENS, causal_weights(), title="demo")
    assert not re.search(r"https?:", html), "the view must not reference any URL"
    assert not re.search(r"<(?:script|link|img)[^>]+(?:src|href)=", html), "no external scripts, styles or images"
    assert "require(" not in html and "import " not in html, "no module loaders"
    data = embedded(html)
    assert data["tokens"] == TOKENS
    assert np.allclose(np.array(data["weights"]), causal_weights().numpy(), atol=5e-4)
    assert data["a_labels"] == ["0", "1"] and data["b_labels"] == ["0", "1", "2"]


def test_views_and_labels():
    w = causal_weights(layers=1)[0]  # (3, L, L): one dropdown
    html = attention_html(TOKENS, w, labels=["17.3", "18.6", "0.0"])
    assert 'data-axis="b"' not in html and embedded(html)["a_labels"] == ["17.3", "18.6", "0.0"]
    ids = {re.search(r'id="(wmlib-attn-[0-9a-f]+)"', attention_html(TOKENS, x)).group(1)
           for x in (w, causal_weights(seed=1)[0])}
    assert len(ids) == 2, "two views on one page need different ids"


def test_tokens_cannot_break_out_of_the_script():
    tokens = ["</script><script>alert(1)</script>", "<b>", "&", '"', "ok", "x"]
    html = attention_html(tokens, causal_weights())
    assert html.count("</script>") == 2, "only the two script elements may close"
    assert embedded(html)["tokens"] == tokens
    title = attention_html(TOKENS, causal_weights(), title="<i>x</i>")
    assert "<i>x</i>" not in title


def test_bad_inputs_are_named():
    w = causal_weights()
    with pytest.raises(ValueError, match="6 positions"):
        attention_html(TOKENS[:-1], w)
    with pytest.raises(ValueError, match="layers, heads, L, L"):
        attention_html(TOKENS, w[0, 0])
    with pytest.raises(ValueError, match="labels"):
        attention_html(TOKENS, w, labels=["a"])
    with pytest.raises(ValueError, match="NaN"):
        attention_html(TOKENS, w * float("nan"))
    with pytest.raises(ValueError, match="initial"):
        attention_html(TOKENS, w, initial=6)
    with pytest.raises(ValueError, match="MB of weights"):
        attention_html([str(i) for i in range(64)], torch.rand(4, 4, 64, 64), max_bytes=100_000)


@pytest.mark.site
def test_hover_shades_the_tokens_in_a_browser(tmp_path):
    """Headless Chromium: hovering a token shades the others by its attention row."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_bin):
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium and chromium-driver")
    w = torch.zeros(2, 2, 6, 6)
    w[..., 0] = 1.0  # every query looks at [CLS] ...
    w[1, 1, 3] = 0
    w[1, 1, 3, 2] = 1.0  # ... except "dogs" in layer 1, head 1, which looks at "love"
    page = tmp_path / "view.html"
    page.write_text(f"<!doctype html><html><body>{attention_html(TOKENS, w)}</body></html>")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        drv.get(page.as_uri())
        tokens = drv.find_elements("css selector", ".wm-token")
        assert [t.text for t in tokens] == TOKENS
        Select(drv.find_element("css selector", "select[data-axis=a]")).select_by_value("1")
        Select(drv.find_element("css selector", "select[data-axis=b]")).select_by_value("1")
        ActionChains(drv).move_to_element(tokens[3]).perform()
        shades = [t.value_of_css_property("background-color") for t in tokens]
        assert shades[2] == "rgba(33, 102, 172, 1)" and shades[0] == "rgba(33, 102, 172, 0)", shades
        caption = drv.find_element("css selector", ".wm-caption").text
        assert caption.startswith("\u201cdogs\u201d (position 3) attends to: love (2) 1.00"), caption
        Select(drv.find_element("css selector", "select[data-axis=b]")).select_by_value("-1")  # mean of heads
        shades = [t.value_of_css_property("background-color") for t in tokens]
        assert shades[0] == shades[2] == "rgba(33, 102, 172, 1)", shades
        logs = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs
    finally:
        drv.quit()
