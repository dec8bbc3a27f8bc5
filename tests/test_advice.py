"""The advice check: each change the diagnosis suggests is run on the same split and judged by the paired test."""

import json

from engine.advice import check_advice, suggested_variants
from engine.approaches import compare
from engine.config import RunConfig
from engine.store.history import load_history

# On the small demo this overfits (train ~95 %, valid ~65 %): the diagnosis suggests ps, wd, epochs, top-K.
OVERFITTING = dict(features="tabular", layers=(400, 200, 100), epochs=10)


def config_on(files, **changes) -> RunConfig:
    return RunConfig(embeddings=str(files.embeddings), tabular=str(files.tabular), **changes)


def test_the_advice_check_records_each_variant_with_the_paired_test(small_demo, session):
    base = session.train(config_on(small_demo, **OVERFITTING))
    variants = suggested_variants(base)
    assert [v.change for v in variants][:3] == ["ps 0.5", "wd 0.1", "5 epochs"]
    check = check_advice(session, base)
    history = {r.run_id: r for r in load_history(session.results_dir).records}
    assert [r.change for r in check.results] == [v.change for v in variants] and not check.failed
    for result, variant in zip(check.results, variants):
        run = history[result.run_id]
        assert run.split_id == base.split_id  # the same valid clips, so the pair is fair
        assert RunConfig.from_dict(run.config).with_(lr=None) == variant.config.with_(lr=None)
        paired = compare(session.results_dir, result.run_id, base.run_id)
        assert (result.a_only, result.b_only, result.mid_p) == (paired.test.a_only, paired.test.b_only,
                                                                paired.test.mid_p)
        expected = ("within noise" if result.mid_p >= 0.05 else
                    "helped" if result.a_only > result.b_only else "did not help")
        assert result.verdict == expected and result.sentence.startswith(result.change)
        assert f"{result.accuracy:.1%} vs {result.base_accuracy:.1%}" in result.sentence
    saved = json.loads((session.results_dir / "advice" / f"{base.run_id}.json").read_text())
    assert [r["run_id"] for r in saved["results"]] == [r.run_id for r in check.results]


def test_a_slow_lr_is_checked_by_raising_it(small_demo, session):
    base = session.train(config_on(small_demo, lr=1e-6, epochs=2))
    assert [v.change for v in suggested_variants(base)] == ["the LR finder's valley", "LR 1e-05"]


def test_a_healthy_run_has_no_advice_to_check(small_demo, session):
    base = session.train(config_on(small_demo, model="logreg", features="embeddings"))
    assert suggested_variants(base) == []
    check = check_advice(session, base)
    assert check.results == () and not (session.results_dir / "advice").exists()
