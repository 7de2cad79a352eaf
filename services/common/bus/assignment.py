"""How a consumer group splits its topics' partitions among its members, on both backends.

Two ways, each computed alike by whoever computes it (the Kafka group's leader, or every member of
an embedded group), so that every member gets the same answer:

- :func:`assign_range`, Kafka's range assignor: per topic, the subscribed members in member-id
  order get consecutive ranges of partitions, the first ones one more when the count does not
  divide. Partition i of topics with the same partition count lands on the same member, so the
  records of one key in ``ds.<dataset>`` and ``dlq.<dataset>`` are read by one consumer.
- :func:`assign_whole`: topics grouped by a function (quality: by dataset), each group whole to
  one member, the largest groups first, each to the member holding the fewest partitions so far.
  A consumer that keeps state per group (quality's windows per dataset) then sees all of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.common.bus.base import GroupOf, TopicPartition


def assign_range(
    members: Mapping[str, frozenset[str]], partitions: Mapping[str, int]
) -> dict[str, set[TopicPartition]]:
    """Kafka's range assignment of ``partitions`` (topic -> count) among ``members`` (id -> topics)."""
    ordered = sorted(members)
    assignment: dict[str, set[TopicPartition]] = {member: set() for member in ordered}
    for topic, count in partitions.items():
        subscribers = [member for member in ordered if topic in members[member]]
        if not subscribers:
            continue
        share, extra = divmod(count, len(subscribers))
        first = 0
        for index, member in enumerate(subscribers):
            size = share + (1 if index < extra else 0)
            assignment[member].update(
                TopicPartition(topic, partition) for partition in range(first, first + size)
            )
            first += size
    return assignment


def assign_whole(
    members: Mapping[str, frozenset[str]], partitions: Mapping[str, int], group_of: GroupOf
) -> dict[str, set[TopicPartition]]:
    """Every partition of every topic of one group (``group_of(topic)``) to one member."""
    ordered = sorted(members)
    assignment: dict[str, set[TopicPartition]] = {member: set() for member in ordered}
    groups: dict[str, list[str]] = {}
    for topic in sorted(partitions):
        groups.setdefault(group_of(topic), []).append(topic)
    load = dict.fromkeys(ordered, 0)
    by_size = sorted(groups.items(), key=lambda item: (-sum(partitions[t] for t in item[1]), item[0]))
    for _name, topics in by_size:
        subscribers = [member for member in ordered if any(topic in members[member] for topic in topics)]
        if not subscribers:
            continue
        member = min(subscribers, key=lambda candidate: (load[candidate], ordered.index(candidate)))
        for topic in topics:
            if topic in members[member]:
                assignment[member].update(TopicPartition(topic, p) for p in range(partitions[topic]))
                load[member] += partitions[topic]
    return assignment
