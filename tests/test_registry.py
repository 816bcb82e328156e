"""``odetx.registry``: a registry owns the wording of a failed lookup, the same whether it
surfaces as a ConfigError on a setting or as a KeyError."""

import pytest

from odetx.data import DATASETS
from odetx.errors import ConfigError
from odetx.models import ARCHS, PRESETS
from odetx.registry import Registry
from odetx.solvers import SOLVERS


@pytest.fixture
def widgets():
    reg = Registry("widget")
    reg.register("sprocket", 1)

    @reg.register("flange")
    def flange():
        return 2

    reg.register("grommet-x", 3)
    return reg


def test_lookup_returns_what_was_registered(widgets):
    assert widgets.lookup("sprocket", "part.widget") == 1
    assert widgets.lookup("flange", "part.widget")() == 2  # the decorator returned the function
    assert widgets["grommet-x"] == 3
    assert widgets.names() == ["sprocket", "flange", "grommet-x"]  # in registration order


def test_lookup_of_an_unknown_name_is_a_config_error_naming_key_and_every_choice(widgets):
    with pytest.raises(ConfigError) as info:
        widgets.lookup("gasket", "part.widget")
    message = str(info.value)
    assert info.value.key == "part.widget" and info.value.exit_code == 2
    assert message.startswith("part.widget: ")
    assert "'gasket'" in message and "widget" in message
    assert message.endswith("choose one of: sprocket, flange, grommet-x")


def test_indexing_raises_key_error_with_the_same_words(widgets):
    with pytest.raises(ConfigError) as as_config:
        widgets.lookup("gasket", "part.widget")
    with pytest.raises(KeyError) as as_key:
        widgets["gasket"]
    (words,) = as_key.value.args
    assert str(as_config.value) == f"part.widget: {words}"
    assert words == "unknown widget 'gasket'; choose one of: sprocket, flange, grommet-x"


def test_a_name_is_registered_once(widgets):
    with pytest.raises(ValueError, match="widget 'sprocket' is already registered"):
        widgets.register("sprocket", 4)
    assert widgets["sprocket"] == 1


@pytest.mark.parametrize(
    "registry, key, known",
    [
        (ARCHS, "model.arch", {"sequential", "parallel", "strang"}),
        (SOLVERS, "solver.method", {"euler", "midpoint", "rk4", "dopri5"}),
        (DATASETS, "data.name", {"digits", "mnist", "cifar10", "listops", "parity"}),
        (PRESETS, "model.preset", {"vit-micro", "deit-tiny", "enc-tiny"}),
    ],
    ids=["archs", "solvers", "datasets", "presets"],
)
def test_every_registry_lists_all_its_names_on_a_miss(registry, key, known):
    with pytest.raises(ConfigError) as info:
        registry.lookup("no-such-name", key)
    message = str(info.value)
    assert message.startswith(f"{key}: unknown ")
    listed = message.split("choose one of: ", 1)[1].split(", ")
    assert sorted(listed) == sorted(registry) and known <= set(listed)
