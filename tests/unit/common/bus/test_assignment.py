"""Whole groups of topics to one member: every member computes the same, balanced answer."""

from __future__ import annotations

from services.common.bus.assignment import assign_whole
from services.common.bus.base import TopicPartition
from services.common.topics import dataset_group


def _topics(*datasets: str) -> frozenset[str]:
    return frozenset(topic for dataset in datasets for topic in (f"ds.{dataset}", f"dlq.{dataset}"))


def test_each_dataset_goes_whole_to_one_member_and_the_members_share_the_load() -> None:
    datasets = [f"d{index}" for index in range(5)]
    subscribed = _topics(*datasets)
    members = {"b": subscribed, "a": subscribed, "c": subscribed}
    counts = {topic: (6 if topic.endswith("d0") else 3) for topic in subscribed}
    assignment = assign_whole(members, counts, dataset_group)
    holders: dict[str, set[str]] = {}
    for member, tps in assignment.items():
        for tp in tps:
            holders.setdefault(dataset_group(tp.topic), set()).add(member)
    assert all(len(members_) == 1 for members_ in holders.values()), holders
    assert set(holders) == set(datasets)
    every = {tp for tps in assignment.values() for tp in tps}
    assert every == {TopicPartition(topic, p) for topic, count in counts.items() for p in range(count)}
    loads = sorted(len(tps) for tps in assignment.values())
    assert loads == [12, 12, 12]  # d0 (6+6) alone; two of the 3+3 datasets on each other member
    # The same answer whatever order the members are listed in.
    assert assignment == assign_whole(dict(reversed(list(members.items()))), counts, dataset_group)


def test_a_single_member_holds_everything_and_other_topics_are_groups_of_their_own() -> None:
    members = {"only": frozenset({"ds.x", "dlq.x", "platform.usage"})}
    counts = {"ds.x": 3, "dlq.x": 3, "platform.usage": 3}
    assignment = assign_whole(members, counts, dataset_group)
    assert len(assignment["only"]) == 9
    two = assign_whole({**members, "other": members["only"]}, counts, dataset_group)
    assert {tp.topic for tp in two["only"]} in ({"ds.x", "dlq.x"}, {"platform.usage"})
