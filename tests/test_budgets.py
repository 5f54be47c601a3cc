import tomllib

import pytest

from edgeopt.budgets import Budget, BudgetError, Budgets

TOML = """
[defaults]
top1_drop_max = 0.5
size_ratio_max = 1.02
[variant.onnx_fp32]
top1_drop_max = 0.1
[model.m]
top1_min = 0.8
[model.m.variant.onnx_fp32]
top1_drop_max = 0.05
xfail = "runtime X cannot run it"
backends = ["opencv"]
"""


@pytest.fixture
def budgets(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text(TOML)
    return Budgets.load(path)


def test_layers_override_in_order(budgets):
    assert budgets.for_("other", "fp32").limits == {"top1_drop_max": 0.5, "size_ratio_max": 1.02}
    assert budgets.for_("other", "onnx_fp32").limits["top1_drop_max"] == 0.1
    b = budgets.for_("m", "onnx_fp32", "onnxruntime")
    assert b.limits == {"top1_drop_max": 0.05, "size_ratio_max": 1.02, "top1_min": 0.8}


def test_xfail_applies_only_to_named_backends(budgets):
    assert budgets.for_("m", "onnx_fp32", "opencv").xfail == "runtime X cannot run it"
    assert budgets.for_("m", "onnx_fp32", "onnxruntime").xfail is None


def test_check_lists_every_violation_with_the_measured_figure():
    budget = Budget({"top1_drop_max": 0.1, "top1_min": 0.8, "sqnr_db_min": 40.0})
    violations = budget.check({"top1_drop": 0.7, "top1": 0.75, "sqnr_db": 50.0})
    assert violations == ["top1_drop = 0.7 pt breaks top1_drop_max = 0.1 pt", "top1 = 0.75 breaks top1_min = 0.8"]


def test_check_ignores_metrics_the_measurement_lacks_and_fails_on_nan():
    budget = Budget({"top1_min": 0.8, "sqnr_db_min": 40.0})
    assert budget.check({"top1": 0.9}) == []
    assert budget.check({"top1": float("nan")}) == ["top1 = nan breaks top1_min = 0.8"]


@pytest.mark.parametrize("bad, message", [
    ("[defaults]\ntop1_dorp_max = 1\n", "unknown budget 'top1_dorp_max'"),
    ("[defaults]\ntop1_min = 'high'\n", "must be a number"),
    ("[default]\ntop1_min = 1\n", "unknown top-level"),
    ("[defaults\n", "budgets.toml"),
])
def test_malformed_file_is_a_clear_error(tmp_path, bad, message):
    path = tmp_path / "budgets.toml"
    path.write_text(bad)
    with pytest.raises(BudgetError, match=message):
        Budgets.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(BudgetError, match="not found"):
        Budgets.load(tmp_path / "nope.toml")


def test_xfails_scoped_by_backend_and_test(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('''
[variant.q]
xfail = "OpenCV has no DynamicQuantizeLinear"
backends = ["opencv"]
[model.m.variant.q]
[[model.m.variant.q.xfails]]
xfail = "ConvInteger costs 7 pt on m"
backends = ["onnxruntime"]
tests = ["accuracy"]
''')
    b = Budgets.load(path)
    assert b.for_("m", "q", "opencv", "latency").xfail == "OpenCV has no DynamicQuantizeLinear"
    assert b.for_("m", "q", "onnxruntime", "accuracy").xfail == "ConvInteger costs 7 pt on m"
    assert b.for_("m", "q", "onnxruntime", "size").xfail is None
    assert b.for_("other", "q", "onnxruntime", "accuracy").xfail is None
    assert b.for_("m", "q", None, "size").xfail is None  # backend-independent test: backend xfails do not apply


def test_xfail_with_unknown_test_is_refused(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('[variant.q]\nxfail = "x"\ntests = ["acuracy"]\n')
    with pytest.raises(BudgetError, match="unknown tests"):
        Budgets.load(path)


def test_skip_leaves_one_model_variant_out_with_its_reason(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('[model.m.variant.slow]\nskip = "costs 20 min of CI"\n')
    b = Budgets.load(path)
    assert b.for_("m", "slow", "torch", "accuracy").skip == "costs 20 min of CI"
    assert b.for_("other", "slow", "torch", "accuracy").skip is None
    path.write_text('[model.m.variant.slow]\nskip = true\n')
    with pytest.raises(BudgetError, match="skip needs a reason"):
        Budgets.load(path)


def test_a_family_naming_models_skips_them_but_holds_no_xfail(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('[family.lb]\nmodels = ["rand*"]\nvariants = ["lowbit_*"]\nskip = "random weights"\n')
    b = Budgets.load(path)
    assert b.for_("random_net", "lowbit_w4a8", "torchscript", "accuracy").skip == "random weights"
    assert b.for_("trained_net", "lowbit_w4a8", "torchscript", "accuracy").skip is None
    path.write_text('[family.lb]\nvariants = ["lowbit_*"]\nxfail = "r"\n')
    with pytest.raises(BudgetError, match="known failures go in"):
        Budgets.load(path)


def test_model_xfail_scoped_by_variants(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('''
[[model.m.xfails]]
xfail = "this engine fails on m's QDQ graphs"
backends = ["opencv"]
variants = ["qdq_a", "qdq_b"]
''')
    b = Budgets.load(path)
    assert b.for_("m", "qdq_b", "opencv", "accuracy").xfail == "this engine fails on m's QDQ graphs"
    assert b.for_("m", "qoperator", "opencv", "accuracy").xfail is None
    assert b.for_("m", "qdq_a", "onnxruntime", "accuracy").xfail is None
    path.write_text('[model.m]\nxfail = "x"\nvariants = "qdq_a"\n')
    with pytest.raises(BudgetError, match="variants must be a non-empty list"):
        Budgets.load(path)


def test_xfail_scoped_by_cpu_flags(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('''
[[model.m.variant.q.xfails]]
xfail = "U8S8 saturates without VNNI"
backends = ["onnxruntime"]
cpu_without = ["avx512_vnni", "avx_vnni"]
''')
    b = Budgets.load(path)
    no_vnni, vnni = frozenset({"avx2", "fma"}), frozenset({"avx2", "avx512_vnni"})
    assert b.for_("m", "q", "onnxruntime", "accuracy", cpu_flags=no_vnni).xfail == "U8S8 saturates without VNNI"
    assert b.for_("m", "q", "onnxruntime", "accuracy", cpu_flags=vnni).xfail is None
    assert b.for_("m", "q", "onnxruntime", "accuracy", cpu_flags=frozenset({"avx_vnni"})).xfail is None
    assert b.for_("m", "q", "opencv", "accuracy", cpu_flags=no_vnni).xfail is None
    path.write_text('[model.m]\nxfail = "x"\ncpu_without = "avx512_vnni"\n')
    with pytest.raises(BudgetError, match="cpu_without must be a non-empty list"):
        Budgets.load(path)


def test_xfail_scoped_to_cpus_with_flags(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('''
[model.m.variant.q]
xfail = "AVX-512 int8 kernels disagree"
backends = ["opencv"]
cpu_with = ["avx512bw"]
''')
    b = Budgets.load(path)
    assert b.for_("m", "q", "opencv", "accuracy", cpu_flags=frozenset({"avx2", "avx512bw"})).xfail \
        == "AVX-512 int8 kernels disagree"
    assert b.for_("m", "q", "opencv", "accuracy", cpu_flags=frozenset({"avx2"})).xfail is None
    assert b.for_("m", "q", "opencv", "accuracy", cpu_flags=frozenset()).xfail is None
    path.write_text('[model.m]\nxfail = "x"\ncpu_with = []\n')
    with pytest.raises(BudgetError, match="cpu_with must be a non-empty list"):
        Budgets.load(path)


def test_machine_reports_notable_flags_it_has():
    from edgeopt import machine

    assert set(machine.notable_flags()) <= machine.cpu_flags()
    assert set(machine.notable_flags()) <= set(machine.NOTABLE_FLAGS)


def test_skip_scoped_by_cpu_flags(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('[variant.bf16]\nskip = "emulated here"\nskip_cpu_without = ["avx512_bf16", "amx_bf16"]\n')
    b = Budgets.load(path)
    assert b.for_("m", "bf16", "torch", "accuracy", cpu_flags=frozenset({"avx2"})).skip == "emulated here"
    assert b.for_("m", "bf16", "torch", "accuracy", cpu_flags=frozenset({"avx2", "amx_bf16"})).skip is None
    assert b.for_("m", "fp32", "torch", "accuracy", cpu_flags=frozenset({"avx2"})).skip is None
    path.write_text('[variant.bf16]\nskip = "x"\nskip_cpu_without = []\n')
    with pytest.raises(BudgetError, match="skip_cpu_without must be a non-empty list"):
        Budgets.load(path)


def test_bf16_emulation_is_read_from_the_flags(monkeypatch):
    from edgeopt import machine

    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert machine.emulates_bf16()
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert not machine.emulates_bf16()
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset())  # unknown CPU: no claim
    assert not machine.emulates_bf16()


def test_xfail_scoped_by_runtime_version(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('''
[model.m.variant.q]
xfail = "OpenCV 5's new engine fails on QDQ"
backends = ["opencv"]
runtimes = {cv2 = ">=5"}
''')
    b = Budgets.load(path)
    case = ("m", "q", "opencv", "accuracy")
    assert b.for_(*case, versions={"cv2": "5.0.0"}).xfail == "OpenCV 5's new engine fails on QDQ"
    assert b.for_(*case, versions={"cv2": "5.1.0-pre"}).xfail == "OpenCV 5's new engine fails on QDQ"
    assert b.for_(*case, versions={"cv2": "4.14.0"}).xfail is None
    assert b.for_(*case, versions={}).xfail is None  # not installed: no claim
    assert b.for_(*case, versions={"cv2": "not-a-version"}).xfail is None


def test_runtime_scoped_xfail_reads_installed_versions(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('[model.m]\nxfail = "old pytest"\nruntimes = {pytest = "<1"}\n'
                    '[model.n]\nxfail = "any pytest"\nruntimes = {pytest = ">=1"}\n'
                    '[model.o]\nxfail = "absent"\nruntimes = {no_such_module_here = ">=0"}\n')
    b = Budgets.load(path)
    assert b.for_("m", "v").xfail is None
    assert b.for_("n", "v").xfail == "any pytest"
    assert b.for_("o", "v").xfail is None


@pytest.mark.parametrize("runtimes, message", [
    ('">=5"', "runtimes must be a table"),
    ("{}", "runtimes must be a table"),
    ('{cv2 = "five"}', "runtimes.cv2 = 'five' is not a version specifier"),
    ("{cv2 = 5}", "runtimes.cv2 = 5 is not a version specifier"),
])
def test_malformed_runtimes_is_an_error(tmp_path, runtimes, message):
    path = tmp_path / "budgets.toml"
    path.write_text(f'[model.m]\nxfail = "x"\nruntimes = {runtimes}\n')
    with pytest.raises(BudgetError, match=message):
        Budgets.load(path)


ENTRIES = '''
[defaults]
top1_drop_max = 0.1
[family.int8]
variants = ["*int8*"]
top1_drop_max = 1.0
[family.compiled]
models = ["*"]
variants = ["*pt2e*"]
model_rss_mb_max = 400
[model.m]
model_rss_mb_max = 60
[[xfail]]
name = "dyn"
xfail = "no DynamicQuantizeLinear"
variants = ["*dynamic*"]
backends = ["opencv*"]
[[xfail]]
like = "dyn"
name = "conv_integer"
xfail = "ConvInteger on {measured}"
backends = ["onnxruntime"]
[[xfail]]
name = "no_finetune"
xfail = "{measured}"
tests = ["accuracy"]
'''
FIGURES = {"conv_integer": {"m": "m: drop 8.1 pt"}, "no_finetune": {"m": {"prune_50": "no fine-tuning: drop 13.4 pt"}}}


def test_families_share_limits_and_one_naming_models_outranks_the_model_table(tmp_path):
    b = Budgets(tomllib.loads(ENTRIES), figures=FIGURES)
    assert b.for_("m", "ort_int8_static").limits == {"top1_drop_max": 1.0, "model_rss_mb_max": 60}
    assert b.for_("m", "torch_int8_pt2e").limits["model_rss_mb_max"] == 400
    assert b.for_("m", "fp32").limits == {"top1_drop_max": 0.1, "model_rss_mb_max": 60}


def test_a_family_naming_backends_holds_only_their_cases_not_the_size_test():
    b = Budgets(tomllib.loads('[defaults]\nmodel_rss_mb_max = 60\n'
                              '[family.plugin]\nvariants = ["*"]\nbackends = ["openvino"]\nmodel_rss_mb_max = 90\n'))
    b.validate()
    assert b.for_("m", "fp32", "openvino", "memory").limits == {"model_rss_mb_max": 90}
    assert b.for_("m", "fp32", "onnxruntime", "memory").limits == {"model_rss_mb_max": 60}
    assert b.for_("m", "fp32", None, "size").limits == {"model_rss_mb_max": 60}


def test_entries_match_globs_inherit_with_like_and_cover_only_cases_with_a_figure():
    b = Budgets(tomllib.loads(ENTRIES), figures=FIGURES)
    b.validate()
    assert b.for_("x", "ort_int8_dynamic", "opencv_classic").xfail == "no DynamicQuantizeLinear"
    assert b.for_("m", "ort_int8_dynamic", "onnxruntime").xfail == "ConvInteger on m: drop 8.1 pt"
    assert b.for_("x", "ort_int8_dynamic", "onnxruntime").xfail is None  # no figure for x: not x's failure
    assert b.for_("m", "prune_50", "torch", "accuracy").xfail == "no fine-tuning: drop 13.4 pt"
    assert b.for_("m", "prune_50", "torch", "agreement").xfail is None
    assert b.for_("m", "prune_70", "torch", "accuracy").xfail is None


@pytest.mark.parametrize("entry, message", [
    ('xfail = "r"\nlike = "nope"', "names no earlier entry"),
    ('xfail = "r"\nmodel = ["m"]', "unknown key"),
    ('xfail = "r {measured}"', "needs measured figures"),
    ('xfail = "r"\nmeasured.m = "1 pt"', "unknown key"),
    ('xfail = "r"\nvariants = "q"', "variants must be a non-empty list"),
])
def test_malformed_entries_are_clear_errors(entry, message):
    with pytest.raises(BudgetError, match=message):
        Budgets(tomllib.loads(f"[[xfail]]\n{entry}\n")).validate()


@pytest.mark.parametrize("toml, message", [
    ("[variant.onnx_fp23]\ntop1_drop_max = 1.0", r"\[variant.onnx_fp23\]: no variant matches 'onnx_fp23'"),
    ("[model.m.variant.fp16]\ntop1_drop_max = 1.0", r"\[model.m\]: no variant matches 'fp16'"),
    ('[family.f]\nvariants = ["ort_*"]\ntop1_drop_max = 1.0', r"no variant matches 'ort_\*'"),
    ('[[xfail]]\nxfail = "r"\nbackends = ["onnxrt"]', r"\[xfail #1\]: no backend matches 'onnxrt'; backends: onnx"),
    ('[[xfail]]\nname = "f"\nxfail = "{measured}"', r"\[xfail #1 measured\]: no model matches 'q'"),
])
def test_a_budget_naming_nothing_is_an_error(toml, message):
    with pytest.raises(BudgetError, match=message):
        figures = {"f": {"q": "1 pt"}} if 'name = "f"' in toml else {}
        Budgets(tomllib.loads(toml), figures=figures).check_names(["m"], ["fp32", "onnx_fp32"], ["onnx", "torch"])
    Budgets(tomllib.loads("[variant.fp32]\ntop1_drop_max = 1.0")).check_names(["m"], ["fp32"], ["torch"])


def test_figures_come_from_the_file_the_budgets_name_and_each_names_an_entry(tmp_path):
    (tmp_path / "budgets.toml").write_text('measured = "figures.toml"\n[[xfail]]\nname = "nf"\nxfail = "measured {measured}"\n')
    (tmp_path / "figures.toml").write_text('[nf]\nm.prune_50 = "drop 13.4 pt"\n')
    b = Budgets.load(tmp_path / "budgets.toml")
    assert b.for_("m", "prune_50").xfail == "measured drop 13.4 pt"
    assert b.for_("m", "prune_70").xfail is None
    (tmp_path / "figures.toml").write_text('[nf]\nm = "1 pt"\n[typo]\nm = "2 pt"\n')
    with pytest.raises(BudgetError, match=r"measured figures for \['typo'\] name no \[\[xfail\]\] entry"):
        Budgets.load(tmp_path / "budgets.toml")
    (tmp_path / "figures.toml").unlink()
    with pytest.raises(BudgetError, match="measured figures file not found: .*figures.toml"):
        Budgets.load(tmp_path / "budgets.toml")
