"""The symbolic retriever: MiniGrid's symbolic view reaches every info, and objects in view become ranked words."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shelm.envs import EnvSettings, make_env, make_vec_env
from shelm.envs.minigrid import SYMBOLIC_VIEW
from shelm.memory.retrieval import top_k
from shelm.memory.symbolic import SymbolicRetriever

# MiniGrid's encoding: (object, colour, state); colours red=0, green=1, blue=2; doors open=0, closed=1, locked=2.
EMPTY, WALL, DOOR, KEY, BALL, BOX, GOAL, LAVA = 1, 2, 4, 5, 6, 7, 8, 9
RED, GREEN, BLUE = 0, 1, 2
AGENT = (3, 6)  # (x, y) of the agent in its 7x7 view: bottom centre


@pytest.fixture(scope="module")
def retriever():
    return SymbolicRetriever()


def _view(*cells: tuple[int, int, tuple[int, int, int]]) -> torch.Tensor:
    """A 7x7 view of empty cells, indexed [x, y] like MiniGrid's, with `cells` = (x, y, (obj, colour, state))."""
    view = np.zeros((7, 7, 3), dtype=np.uint8)
    view[..., 0] = EMPTY
    for x, y, encoding in cells:
        view[x, y] = encoding
    return torch.as_tensor(view)


def _words(retriever, views: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
    ids, scores = top_k(retriever.scores(views), k, retriever.pad_item)
    return [
        [(retriever.vocabulary[i], round(s, 6)) for i, s in zip(row, values, strict=True)]
        for row, values in zip(ids.tolist(), scores.tolist(), strict=True)
    ]


# --- the environment side


def test_symbolic_view_is_in_the_reset_and_step_info():
    envs = make_vec_env(EnvSettings("MiniGrid-MemoryS7-v0"), 2)
    try:
        _, info = envs.reset(seed=3)
        assert info[SYMBOLIC_VIEW].shape == (2, 7, 7, 3) and info[SYMBOLIC_VIEW].dtype == np.uint8
        # The agent's own cell holds what it carries: nothing at the start.
        assert (info[SYMBOLIC_VIEW][:, AGENT[0], AGENT[1], 0] == EMPTY).all()
        _, _, _, _, info = envs.step(np.array([0, 1]))
        assert info[SYMBOLIC_VIEW].shape == (2, 7, 7, 3)
    finally:
        envs.close()


def test_the_cell_in_front_of_the_agent_is_just_above_it_in_the_view():
    env = make_env(EnvSettings("MiniGrid-MemoryS7-v0"))
    try:
        for seed in range(3):
            _, info = env.reset(seed=seed)
            for action in (2, 0, 2, 1, 1, 2):
                base = env.unwrapped
                front = base.grid.get(*base.front_pos)
                expected = front.encode() if front is not None else (EMPTY, 0, 0)
                assert tuple(info[SYMBOLIC_VIEW][AGENT[0], AGENT[1] - 1]) == tuple(expected)
                _, _, _, _, info = env.step(action)
    finally:
        env.close()


def test_after_an_episode_ends_the_info_holds_the_new_episodes_view():
    envs = make_vec_env(EnvSettings("MiniGrid-Empty-5x5-v0"), 1)
    try:
        envs.reset(seed=0)
        # Empty-5x5: the agent starts at (1, 1) facing right and the goal is at (3, 3).
        for action in (2, 2, 1, 2):
            _, _, terminated, _, _ = envs.step(np.array([action]))
            assert not terminated[0]
        obs, reward, terminated, _, info = envs.step(np.array([2]))
        assert terminated[0] and reward[0] > 0
    finally:
        envs.close()
    fresh = make_env(EnvSettings("MiniGrid-Empty-5x5-v0"))
    try:
        fresh_obs, fresh_info = fresh.reset(seed=123)  # the layout does not depend on the seed
    finally:
        fresh.close()
    assert np.array_equal(info[SYMBOLIC_VIEW][0], fresh_info[SYMBOLIC_VIEW])
    assert np.array_equal(obs[0], fresh_obs)
    # The view of the finished episode (the goal under the agent's nose) travels in final_info.
    final_view = info["final_info"][SYMBOLIC_VIEW][0]
    assert not np.array_equal(final_view, info[SYMBOLIC_VIEW][0])


def test_a_real_view_names_the_objects_in_it(retriever):
    env = make_env(EnvSettings("MiniGrid-MemoryS7-v0"))
    try:
        _, info = env.reset(seed=0)
    finally:
        env.close()
    view = info[SYMBOLIC_VIEW]
    objects = {(int(o), int(c)) for o, c, _ in view.reshape(-1, 3) if o in (KEY, BALL)}
    colours = ["red", "green", "blue", "purple", "yellow", "grey"]
    expected = {f"{colours[c]} {'key' if o == KEY else 'ball'}" for o, c in objects}
    assert expected  # the start room of MemoryS7 shows the objects to remember
    ((first, _), *_), *_ = _words(retriever, torch.as_tensor(view)[None], 1)
    assert first in expected
    named = {w for w, s in _words(retriever, torch.as_tensor(view)[None], len(expected))[0]}
    assert named == expected


# --- hand-built views


def test_nearer_objects_come_first_then_walls_then_nothing(retriever):
    view = _view((3, 4, (BALL, GREEN, 0)), (0, 0, (KEY, RED, 0)), (3, 5, (WALL, 5, 0)), (4, 6, (WALL, 5, 0)))
    ((ball, key, wall, nothing),) = _words(retriever, view[None], 4)
    assert ball == ("green ball", round(1 + 1 / 3, 6))  # distance 2
    assert key == ("red key", round(1 + 1 / 10, 6))  # distance 3 + 6
    assert wall == ("wall", 0.5)  # the nearest wall, distance 1: after every object however far
    assert nothing == ("nothing", 0.0)


def test_an_item_scores_its_nearest_instance(retriever):
    view = _view((0, 0, (BALL, BLUE, 0)), (2, 6, (BALL, BLUE, 0)), (6, 0, (BALL, BLUE, 0)))
    assert _words(retriever, view[None], 2) == [[("blue ball", 1.5), ("nothing", 0.0)]]


def test_an_empty_view_is_all_nothing(retriever):
    empty = _view()
    unseen = torch.zeros(7, 7, 3, dtype=torch.uint8)
    scores = retriever.scores(torch.stack([empty, unseen]))
    assert scores.shape == (2, len(retriever.vocabulary)) and not scores.any()
    assert _words(retriever, torch.stack([empty, unseen]), 2) == [[("nothing", 0.0)] * 2] * 2


def test_goal_and_lava_are_named(retriever):
    view = _view((3, 2, (GOAL, GREEN, 0)), (2, 6, (LAVA, RED, 0)))
    assert _words(retriever, view[None], 2) == [[("lava", 1.5), ("goal", round(1 + 1 / 5, 6))]]


@pytest.mark.parametrize(("state", "word"), [(0, "open red door"), (1, "red door"), (2, "locked red door")])
def test_door_states_are_named(retriever, state, word):
    view = _view((3, 5, (DOOR, RED, state)))
    assert _words(retriever, view[None], 1) == [[(word, 1.5)]]


def test_objects_of_each_colour_and_a_carried_state_map_to_one_word(retriever):
    # Boxes and keys ignore the state channel; every colour has its own word.
    views = torch.stack([_view((3, 5, (BOX, c, 1))) for c in range(6)] + [_view((3, 5, (KEY, 5, 2)))])
    words = [row[0][0] for row in _words(retriever, views, 1)]
    assert words == ["red box", "green box", "blue box", "purple box", "yellow box", "grey box", "grey key"]


def test_the_scores_of_a_batch_are_the_scores_of_each_view(retriever):
    rng = np.random.default_rng(0)
    views = np.zeros((6, 7, 7, 3), dtype=np.uint8)
    views[..., 0] = rng.choice([EMPTY, WALL, KEY, BALL, BOX, DOOR], size=(6, 7, 7))
    views[..., 1] = rng.integers(0, 6, size=(6, 7, 7))
    views[..., 2] = rng.integers(0, 3, size=(6, 7, 7))
    batch = retriever.scores(torch.as_tensor(views))
    for i in range(6):
        assert torch.equal(batch[i], retriever.scores(torch.as_tensor(views[i : i + 1]))[0])


def test_a_view_of_another_size_is_refused(retriever):
    with pytest.raises(ValueError, match="7, 7"):
        retriever.scores(torch.ones(1, 5, 5, 3, dtype=torch.uint8))
