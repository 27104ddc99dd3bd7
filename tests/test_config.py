import pytest

from shelm.agents import resolve_config
from shelm.config import TrainConfig, parse_overrides, parse_value
from shelm.envs import list_envs, paper_presets
from shelm.errors import ShelmError


def test_parse_value_converts_to_the_field_type():
    assert parse_value("lr", "1e-4") == pytest.approx(1e-4)
    assert parse_value("n_envs", "8") == 8
    assert parse_value("total_steps", "1_000") == 1000
    assert parse_value("norm_reward", "false") is False
    assert parse_value("ent_decay", "linear") == "linear"


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [
        ("n_envs=eight", "expected an integer"),
        ("lr=fast", "expected a number"),
        ("norm_reward=maybe", "expected true or false"),
        ("ent_decay=cosine", "expected one of none, linear"),
        ("learning_rate=1", "unknown setting 'learning_rate'"),
        ("n_env=4", "did you mean n_envs?"),
        ("lr", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_value(pair, fragment):
    with pytest.raises(ShelmError, match=fragment):
        parse_overrides([pair])


def test_paper_preset_applies_and_explicit_values_win():
    config, applied = resolve_config("MiniGrid-DoorKey-6x6-v0", "lstm", {"n_steps": 16})
    assert config.lr == 5e-5 and config.ent_coef == 0.01
    assert config.n_steps == 16 and "n_steps" not in applied
    assert applied["lr"] == 5e-5


def test_helm_preset_carries_the_authors_top_level_beta_and_explicit_beta_wins():
    config, applied = resolve_config("MiniGrid-MemoryS11-v0", "helm", {})
    assert config.beta == 100.0 and applied["beta"] == 100.0
    config, applied = resolve_config("MiniGrid-MemoryS11-v0", "helm", {"beta": 1.0})
    assert config.beta == 1.0 and "beta" not in applied
    # Off the papers' tasks, and for agents without a FrozenHopfield, no preset sets beta.
    assert resolve_config("MiniGrid-Empty-5x5-v0", "helm", {})[0].beta == TrainConfig().beta
    assert "beta" not in resolve_config("MiniGrid-MemoryS11-v0", "shelm", {})[1]


def test_the_oracle_control_trains_with_shelms_paper_settings():
    oracle, applied = resolve_config("MiniGrid-MemoryS11-v0", "oracle", {})
    shelm, _ = resolve_config("MiniGrid-MemoryS11-v0", "shelm", {})
    assert (oracle.lr, oracle.ent_coef, oracle.n_steps, oracle.total_steps) == (5e-4, 0.005, 128, 2_000_000)
    assert (oracle.lr, oracle.ent_coef, oracle.n_steps) == (shelm.lr, shelm.ent_coef, shelm.n_steps)
    assert applied["lr"] == 5e-4


def test_preset_none_keeps_defaults():
    config, applied = resolve_config("MiniGrid-DoorKey-6x6-v0", "lstm", {"preset": "none"})
    assert applied == {} and config.lr == TrainConfig().lr


def test_env_preset_turns_off_reward_normalisation_for_random_maze():
    config, _ = resolve_config("shelm/RandomMaze-v0", "cnn", {})
    assert config.norm_reward is False and config.total_steps == 2_000_000


def test_every_preset_is_a_valid_config_of_a_registered_env():
    registered = {env_id for env_id, _ in list_envs()}
    for (env_id, agent), row in paper_presets().items():
        resolve_config(env_id, agent, {})
        assert set(row) <= set(TrainConfig().to_dict())
        assert env_id in registered, env_id


def test_miniworld_presets_follow_the_reference_with_shelm_windows_in_steps():
    assert sum(env_id.startswith("MiniWorld-") for env_id, _ in paper_presets()) == 8 * 5
    config, applied = resolve_config("MiniWorld-Sign-v0", "shelm", {})
    # Reference: lr 1e-4, entropy 0.01, 64-step rollouts, 63 LM positions at top-2 words per step.
    assert (config.lr, config.ent_coef, config.n_steps, config.mem_len, config.topk) == (1e-4, 0.01, 64, 31, 2)
    assert applied["total_steps"] == 500_000
    config, _ = resolve_config("MiniWorld-PickupObjects-v0", "lstm", {})
    assert (config.lr, config.ent_coef, config.n_steps) == (5e-5, 0.005, 128)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"n_envs": 0}, "n_envs=0 must be >= 1"),
        ({"lr": 0.0}, "lr=0.0 must be > 0"),
        ({"gamma": 1.5}, r"gamma=1.5 must be in \[0, 1\]"),
        ({"n_minibatches": 10_000}, "n_minibatches=10000 exceeds"),
    ],
)
def test_validation_rejects_impossible_values(overrides, fragment):
    with pytest.raises(ShelmError, match=fragment):
        resolve_config("MiniGrid-Empty-5x5-v0", "cnn", overrides)


def test_round_trip_and_foreign_keys():
    config = TrainConfig(lr=1e-3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ShelmError, match="unknown keys"):
        TrainConfig.from_dict({**config.to_dict(), "not_a_setting": 1.0})


def test_a_config_saved_before_a_setting_existed_reproduces_how_it_ran():
    saved = TrainConfig(precision="bfloat16", lm_compile="true", fusion="normalized").to_dict()
    for key in ("precision", "lm_compile", "fusion"):
        del saved[key]
    old = TrainConfig.from_dict(saved)
    assert (old.precision, old.lm_compile, old.fusion) == ("float32", "false", "concat")
