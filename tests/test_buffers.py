"""Behaviour of the Observation / Action containers and MemoryRecord."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from coltra.buffers import Action, MemoryRecord, Observation

# ---------------------------------------------------------------------------- construction


def test_positional_value_is_the_default_field() -> None:
    x = np.arange(4, dtype=np.float32)
    assert Observation(x).keys() == ["vector"]
    assert Observation(x).vector is x
    assert Action(x).keys() == ["continuous"]
    assert Action(x).continuous is x
    assert Action(discrete=3).discrete == 3
    assert Action(discrete=3).keys() == ["discrete"]


def test_positional_and_named_default_field_together_is_an_error() -> None:
    with pytest.raises(TypeError, match="'vector' given both"):
        Observation(np.zeros(2), vector=np.zeros(2))


def test_lists_and_numbers_become_numpy_arrays() -> None:
    obs = Observation([1.0, 2.0])
    assert isinstance(obs.vector, np.ndarray)
    np.testing.assert_array_equal(obs.vector, [1.0, 2.0])
    assert isinstance(Action(discrete=1).discrete, np.ndarray)


def test_tensors_are_kept_as_they_are() -> None:
    t = torch.ones(3)
    assert Observation(t).vector is t


def test_named_parts() -> None:
    obs = Observation(rays=np.zeros(5), goal=np.ones(2))
    assert obs.keys() == ["rays", "goal"]
    assert obs["goal"].tolist() == [1.0, 1.0]
    assert "rays" in obs and "vector" not in obs
    assert dict(obs.items()).keys() == {"rays", "goal"}
    assert obs.as_dict()["rays"].shape == (5,)


@pytest.mark.parametrize("cls", [Observation, Action])
def test_empty_is_an_error(cls: type[Observation] | type[Action]) -> None:
    with pytest.raises(ValueError, match="at least one field"):
        cls()
    with pytest.raises(ValueError, match="at least one field"):
        cls(None)


@pytest.mark.parametrize(
    "value",
    ["abc", ["a", "b"], {"x": 1}, object(), np.array(["a", "b"]), [[1, 2], [3]]],
    ids=["str", "str-list", "dict", "object", "str-array", "ragged"],
)
def test_non_numeric_input_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="field 'vector'"):
        Observation(value)


def test_is_immutable() -> None:
    obs = Observation(np.zeros(2))
    with pytest.raises(AttributeError, match="immutable"):
        obs.vector = np.ones(2)  # type: ignore[misc]


def test_missing_field_names_the_fields_there_are() -> None:
    obs = Observation(np.zeros(2))
    with pytest.raises(AttributeError, match=r"no field 'image'.*\['vector'\]"):
        _ = obs.image
    with pytest.raises(KeyError, match=r"no field 'image'.*\['vector'\]"):
        _ = obs["image"]
    assert not hasattr(obs, "image")


# ---------------------------------------------------------------------------- batches


@pytest.mark.parametrize(
    ("bundle", "is_batch", "size"),
    [
        (Observation(np.zeros(4)), False, 1),
        (Observation(np.zeros((5, 4))), True, 5),
        (Observation(image=np.zeros((7, 7, 3))), False, 1),
        (Observation(image=np.zeros((2, 7, 7, 3))), True, 2),
        (Observation(np.zeros((0, 4))), True, 0),
        (Action(discrete=2), False, 1),
        (Action(discrete=np.array([0, 1, 1, 0, 1, 1])), True, 6),
        (Action(np.zeros((3, 2))), True, 3),
        (Observation(torch.zeros(6, 2)), True, 6),
    ],
)
def test_batch_size(bundle: Observation | Action, is_batch: bool, size: int) -> None:
    assert bundle.is_batch is is_batch
    assert bundle.batch_size == size
    assert len(bundle) == size


def test_mismatched_batch_sizes_are_a_value_error_showing_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"batch size.*vector\[3, 4\].*image\[2, 7, 7, 3\]"):
        Observation(vector=np.zeros((3, 4)), image=np.zeros((2, 7, 7, 3)))


def test_mixing_single_items_and_batches_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"\['vector'\] hold one item"):
        Observation(vector=np.zeros(4), image=np.zeros((2, 7, 7, 3)))


def test_stack_makes_a_batch() -> None:
    items = [Observation(np.full(3, i, dtype=np.float32)) for i in range(4)]
    batch = Observation.stack(items)
    assert batch.vector.shape == (4, 3)
    assert batch.vector.dtype == np.float32
    np.testing.assert_array_equal(batch.vector[:, 0], [0, 1, 2, 3])
    actions = Action.stack([Action(discrete=1), Action(discrete=0)])
    np.testing.assert_array_equal(actions.discrete, [1, 0])


def test_stack_of_tensors_gives_a_tensor() -> None:
    batch = Observation.stack([Observation(torch.ones(2)), Observation(torch.zeros(2))])
    assert isinstance(batch.vector, torch.Tensor)
    assert batch.vector.tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_cat_joins_batches() -> None:
    first = Observation(np.zeros((2, 3)))
    second = Observation(np.ones((3, 3)))
    joined = Observation.cat([first, second])
    assert joined.batch_size == 5
    np.testing.assert_array_equal(joined.vector[:, 0], [0, 0, 1, 1, 1])


def test_cat_of_single_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="stack"):
        Observation.cat([Observation(np.zeros(3)), Observation(np.zeros(3))])


def test_stack_and_cat_accept_fields_in_any_order() -> None:
    a = Observation(vector=np.zeros((1, 2)), goal=np.zeros((1, 3)))
    b = Observation(goal=np.ones((1, 3)), vector=np.ones((1, 2)))
    joined = Observation.cat([a, b])
    assert joined.keys() == ["vector", "goal"]
    np.testing.assert_array_equal(joined.goal[:, 0], [0, 1])


@pytest.mark.parametrize("how", ["stack", "cat"])
def test_combining_bad_parts_is_an_error(how: str) -> None:
    combine = getattr(Observation, how)
    with pytest.raises(ValueError, match="at least one"):
        combine([])
    with pytest.raises(ValueError, match="fields"):
        combine([Observation(np.zeros((1, 2))), Observation(goal=np.zeros((1, 2)))])
    with pytest.raises(TypeError, match="item 1 is a Action"):
        combine([Observation(np.zeros((1, 2))), Action(np.zeros((1, 2)))])


# ---------------------------------------------------------------------------- indexing


@pytest.fixture(params=["numpy", "torch"])
def batch(request: pytest.FixtureRequest) -> Observation:
    """A batch of 4 with vector[i] = [i, 10 i] and image[i] filled with i."""
    vector = np.stack([np.arange(4), 10 * np.arange(4)], axis=1).astype(np.float32)
    image = np.broadcast_to(np.arange(4, dtype=np.float32)[:, None, None, None], (4, 2, 2, 1))
    obs = Observation(vector=vector, image=image.copy())
    return obs.tensor() if request.param == "torch" else obs


def _rows(obs: Observation) -> list[float]:
    return [float(v) for v in obs.numpy().vector[:, 0]]


def test_int_index_gives_one_item(batch: Observation) -> None:
    item = batch[2]
    assert not item.is_batch
    assert item.numpy().vector.tolist() == [2.0, 20.0]
    assert item.image.shape == (2, 2, 1)
    assert batch[-1].numpy().vector.tolist() == [3.0, 30.0]
    assert batch[np.int64(1)].numpy().vector.tolist() == [1.0, 10.0]


def test_int_index_out_of_range(batch: Observation) -> None:
    with pytest.raises(IndexError, match="index 4 out of range for a batch of 4"):
        _ = batch[4]
    with pytest.raises(IndexError, match="-5"):
        _ = batch[-5]


def test_slice_mask_and_index_array(batch: Observation) -> None:
    assert _rows(batch[1:3]) == [1.0, 2.0]
    assert _rows(batch[np.array([True, False, True, False])]) == [0.0, 2.0]
    assert _rows(batch[np.array([3, 0])]) == [3.0, 0.0]
    assert _rows(batch[[1, 1]]) == [1.0, 1.0]
    assert _rows(batch[torch.tensor([3, 0])]) == [3.0, 0.0]
    assert _rows(batch[torch.tensor([False, True, True, False])]) == [1.0, 2.0]
    assert batch[1:3].image.shape == (2, 2, 2, 1)


def test_indexing_a_single_item_is_an_error() -> None:
    with pytest.raises(IndexError, match="not a batch"):
        _ = Observation(np.zeros(3))[0]


# ---------------------------------------------------------------------------- conversion


def test_tensor_and_back_round_trip() -> None:
    obs = Observation(vector=np.arange(6, dtype=np.float32).reshape(2, 3), flag=np.ones((2, 1)))
    as_tensor = obs.tensor("cpu")
    assert isinstance(as_tensor.vector, torch.Tensor)
    assert as_tensor.vector.device == torch.device("cpu")
    assert as_tensor.vector.dtype == torch.float32
    assert as_tensor.flag.dtype == torch.float64
    back = as_tensor.numpy()
    assert isinstance(back.vector, np.ndarray)
    assert back.vector.dtype == np.float32
    assert back == obs


def test_numpy_detaches_tensors_that_need_grad() -> None:
    action = Action(torch.ones(2, 3, requires_grad=True) * 2)
    np.testing.assert_array_equal(action.numpy().continuous, np.full((2, 3), 2.0))


def test_map_applies_to_every_field() -> None:
    obs = Observation(vector=np.ones(2), goal=np.ones(3)).map(lambda v: v * 3)
    assert obs.vector.tolist() == [3.0, 3.0]
    assert obs.goal.tolist() == [3.0, 3.0, 3.0]


def test_repr_is_readable() -> None:
    obs = Observation(vector=np.zeros((8, 4), dtype=np.float32), image=np.zeros((8, 7, 7, 3)))
    assert repr(obs) == "Observation(vector=array(float32[8, 4]), image=array(float64[8, 7, 7, 3]))"
    assert repr(Action(discrete=torch.tensor([1, 2]))) == "Action(discrete=tensor(int64[2]))"


@pytest.mark.parametrize(
    "bundle",
    [
        Observation(vector=np.arange(3.0), image=np.zeros((2, 2, 1))),
        Action(discrete=np.array([1, 0])),
        Observation(torch.arange(4.0).reshape(2, 2)),
    ],
    ids=["obs-numpy", "action", "obs-torch"],
)
def test_pickle_and_copy_round_trip(bundle: Observation | Action) -> None:
    for clone in (
        pickle.loads(pickle.dumps(bundle)),
        copy.copy(bundle),
        copy.deepcopy(bundle),
    ):
        assert type(clone) is type(bundle)
        assert clone == bundle
        assert clone.keys() == bundle.keys()


def test_equality() -> None:
    obs = Observation(np.array([1.0, 2.0]))
    assert obs == Observation(np.array([1.0, 2.0]))
    assert obs == Observation(torch.tensor([1.0, 2.0]))  # values, not storage, decide
    assert obs != Observation(np.array([1.0, 3.0]))
    assert obs != Observation(np.array([[1.0, 2.0]]))
    assert obs != Observation(goal=np.array([1.0, 2.0]))
    assert obs != Action(np.array([1.0, 2.0]))
    assert obs != np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="unhashable"):
        hash(obs)


# ---------------------------------------------------------------------------- MemoryRecord


def test_memory_record_shape_and_done() -> None:
    agents, steps = 3, 4
    terminated = np.zeros((agents, steps), dtype=bool)
    truncated = np.zeros((agents, steps), dtype=bool)
    terminated[0, 1] = True
    truncated[2, 3] = True
    record = MemoryRecord(
        obs=Observation(np.zeros((agents, steps, 2))),
        action=Action(discrete=np.zeros((agents, steps), dtype=np.int64)),
        logprob=np.zeros((agents, steps)),
        reward=np.zeros((agents, steps)),
        value=np.zeros((agents, steps)),
        terminated=terminated,
        truncated=truncated,
        mask=np.ones((agents, steps), dtype=bool),
        bootstrap_value=np.zeros((agents, steps)),
        last_value=np.zeros(agents),
    )
    assert record.shape == (3, 4)
    assert record.done.sum() == 2
    assert record.done[0, 1] and record.done[2, 3]
