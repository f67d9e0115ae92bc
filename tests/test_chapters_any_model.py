"""The chapters that run a pretrained language model (1, 2, 6, 7, 12, 13 and 14) run top to bottom in
QUICK mode with MODEL set to a tiny random model of another decoder family (wmlib.testing): Qwen3
(q/k norms, no BOS, digits grouped in threes) and GPT-NeoX (partial RoPE, parallel residual,
LayerNorm, digits merged by BPE). Their checks of mechanism hold for any model; their behavioural
findings are then stated by computed sentences instead of asserted, and a model that answers nothing
right must not break them (no empty sets, no division by zero), which this test exercises."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"Traceback|Error|Warning|warn\(", re.I)
CHAPTERS = ["ch01_what_is_working_memory", "ch02_working_meets_long_term_memory", "ch06_inside_pretrained_attention",
            "ch07_kv_cache", "ch12_in_context_learning", "ch13_conversational_memory", "ch14_measuring_working_memory"]


@pytest.mark.notebook
@pytest.mark.parametrize("family", ["qwen3", "gpt_neox"])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_with_a_tiny_model_of_another_family(chapter, family, tiny_model_dir, tmp_path):
    import nbformat
    import papermill as pm

    path = ROOT / "chapters" / f"{chapter}.ipynb"
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters={"QUICK": True, "MODEL": str(tiny_model_dir(family))},
                        kernel_name="python3", cwd=str(path.parent), progress_bar=False, log_output=False)
    nb = nbformat.read(out, as_version=4)
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            assert o.output_type != "error", f"cell {i} raised {o.get('ename')}: {o.get('evalue')}"
            if o.output_type == "stream" and o.name == "stderr":
                assert not NOISE.search(o.text), f"cell {i} wrote to stderr:\n{o.text[:500]}"
