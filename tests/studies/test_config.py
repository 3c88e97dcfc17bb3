"""The study configs: each study's parameters stated once, and what derives from them (the
run function's arguments, config.json, the seed loop's arguments and the binaries' flags)."""

import ast
import dataclasses
import importlib
import importlib.util
import json

import pytest
from absl import flags

from tests.support import REPO_ROOT
from tfstiffness import studies
from tfstiffness.cli import _flags
from tfstiffness.studies import config as config_lib
from tfstiffness.studies.cifar100_superclass import Cifar100SuperclassConfig
from tfstiffness.studies.class_stiffness import ClassStiffnessConfig
from tfstiffness.studies.influence import InfluenceConfig
from tfstiffness.studies.layerwise import LayerwiseConfig
from tfstiffness.studies.learning_rate_study import LearningRateStudyConfig
from tfstiffness.studies.neighbourhoods import NeighbourhoodsConfig
from tfstiffness.studies.saved_model import SummaryConfig
from tfstiffness.studies.text_transformer import TextTransformerConfig

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "runs"
CONFIGS = {"class_stiffness": ClassStiffnessConfig,
           "cifar100_superclass": Cifar100SuperclassConfig,
           "text_transformer": TextTransformerConfig,
           "learning_rate_study": LearningRateStudyConfig,
           "neighbourhoods": NeighbourhoodsConfig, "layerwise": LayerwiseConfig,
           "influence": InfluenceConfig, "summary": SummaryConfig}
# Flags of a binary that are not study parameters: how it runs, and options it gathers into
# data_options / model_options.
RUN_FLAGS = {"output_dir", "quiet", "verbosity"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class _WithExtra(NeighbourhoodsConfig):
    extra_width: int = config_lib.parameter(3, "An extra width.", flag="integer",
                                            lower_bound=1)


def test_a_field_added_to_a_config_is_a_flag_with_its_default_help_and_bounds():
    fv = flags.FlagValues()
    _flags.define_config(fv, _WithExtra, "demo")
    assert fv["extra_width"].default == 3 and fv["extra_width"].help == "An extra width."
    fv(["prog", "--extra_width=5", "--radii=0.2,0.4"])
    kwargs = _flags.config_kwargs(fv, _WithExtra)
    assert kwargs["extra_width"] == 5 and kwargs["radii"] == [0.2, 0.4]
    assert kwargs["output_dir"] == "runs/demo" and kwargs["verbose"] is True
    config = _WithExtra.build(**{k: v for k, v in kwargs.items()
                                 if k not in ("output_dir", "verbose")})
    assert config.record()["extra_width"] == 5
    refusing = flags.FlagValues()
    _flags.define_config(refusing, _WithExtra, "demo")
    with pytest.raises(flags.IllegalFlagValueError, match="extra_width"):
        refusing(["prog", "--extra_width=0"])


@pytest.mark.parametrize("binary", sorted(CONFIGS))
def test_each_binary_has_a_flag_for_every_field_with_one(binary):
    module = importlib.import_module(f"tfstiffness.cli.{binary}")
    config_class = CONFIGS[binary]
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    with_flags = {name for name, f in fields.items() if f.metadata.get("flag")}
    assert with_flags <= set(module.FLAGS)
    for name in with_flags:
        default = fields[name].default
        flag = module.FLAGS[name]
        assert flag.help.endswith(fields[name].metadata["help"]) or name == "model", name
        if isinstance(default, (int, float, str)) and name != "eval_epochs":
            assert flag.default == default, name
    # A field without a flag (data_options, model_options) has none.
    assert not ({name for name in fields if name not in with_flags} & set(module.FLAGS))


def test_run_functions_take_the_config_or_its_fields():
    config = NeighbourhoodsConfig.build(grid_n=6, epochs=1)
    assert config == NeighbourhoodsConfig(grid_n=6, epochs=1)
    assert NeighbourhoodsConfig.build(config, radii=(0.3,)).radii == (0.3,)
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such'"):
        studies.run_neighbourhoods("unused", no_such=1)
    with pytest.raises(TypeError, match="expected a NeighbourhoodsConfig"):
        studies.run_neighbourhoods("unused", config=LayerwiseConfig())


def test_seed_kwargs_and_seeds_record_derive_from_the_fields():
    config = LayerwiseConfig(seeds=(2, 0), hidden_widths=((4, 2),), activations=("tanh",))
    kwargs = config.seed_kwargs()
    assert "seed" not in kwargs and "seeds" not in kwargs
    assert kwargs["hidden_widths"] == [[4, 2]] and kwargs["activations"] == ["tanh"]
    assert config.seeds_record() == {"study": "layerwise", "seeds": [2, 0], **kwargs}
    assert set(config.record()) == {"study"} | {f.name for f in dataclasses.fields(config)
                                                if f.name != "seeds"}


def _fixture_flags(name):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    made = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(made)
    return made.RUNS[name][:2]


@pytest.mark.parametrize("name", ["class_stiffness_interrupted", "neighbourhoods_interrupted"])
def test_the_record_of_the_same_flags_is_the_config_json_written_before_the_move(name):
    module_name, args = _fixture_flags(name)
    module = importlib.import_module(module_name)
    binary = module_name.rsplit(".", 1)[-1]
    fv = flags.FlagValues()
    _flags.define_config(fv, CONFIGS[binary], binary)
    for flag in ("synthetic_per_class", "synthetic_noise", "synthetic_class_scale"):
        if flag in module.FLAGS:  # The class binaries' generator flags.
            fv[flag] = module.FLAGS[flag]
    fv(["prog", *args])
    kwargs = _flags.config_kwargs(fv, CONFIGS[binary])
    options = (_flags.synthetic_options(fv, fv["dataset"].value, "hierarchical_images",
                                        _flags.HIERARCHY_FLAGS)
               if "synthetic_noise" in fv else None)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("output_dir", "verbose")}
    if "synthetic_noise" in fv:
        kwargs["data_options"] = options
    record = CONFIGS[binary].build(**kwargs).record()
    saved = json.loads((FIXTURES / name / "config.json").read_text())
    assert json.loads(json.dumps(record)) == saved


def test_config_json_of_a_run_is_its_configs_record(tmp_path):
    summary = studies.run_neighbourhoods(str(tmp_path / "one"), grid_n=6, widths=[4],
                                         epochs=1, radii=(0.5,), verbose=False)
    record = NeighbourhoodsConfig(grid_n=6, widths=[4], epochs=1, radii=(0.5,)).record()
    saved = json.loads((tmp_path / "one" / "config.json").read_text())
    assert saved == json.loads(json.dumps(record)) == summary["config"]


def test_config_json_of_a_run_over_seeds_is_its_configs_seeds_record(tmp_path):
    config = NeighbourhoodsConfig(grid_n=6, widths=[4], epochs=1, radii=(0.5,), seeds=(0, 1))
    studies.run_neighbourhoods(str(tmp_path / "seeds"), config, verbose=False)
    saved = json.loads((tmp_path / "seeds" / "config.json").read_text())
    assert saved == json.loads(json.dumps(config.seeds_record()))
    one = json.loads((tmp_path / "seeds" / "seed=1" / "config.json").read_text())
    assert one == json.loads(json.dumps(dataclasses.replace(config, seed=1).record()))


def _module_imports(root):
    """module name -> the package modules it imports (at any depth of its code)."""
    paths = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    imports = {}
    for name, path in paths.items():
        found = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # Imports for type checkers only never run.
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = {f"{node.module}.{alias.name}" for alias in node.names} & set(paths)
                # `from package import module` needs that module, not the package's names.
                found.update(subs if len(subs) == len(node.names) else {node.module, *subs})
        imports[name] = (found & set(paths)) - {name}
    return imports


def test_no_import_cycle_among_the_package_modules():
    imports = _module_imports(REPO_ROOT / "tfstiffness")
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for other in sorted(imports[module]):
            if state.get(other) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(path + [module, other])}")
            if other not in state:
                visit(other, path + [module])
        state[module] = "done"

    for module in sorted(imports):
        if module not in state:
            visit(module, [])
