"""Automatic layered left-to-right layout of one scope of steps (no Qt, so it is testable alone)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import networkx as nx

logger = logging.getLogger(__name__)

LAYER_GAP = 90.0
"""Horizontal space between layers, in scene units."""
ROW_GAP = 36.0
"""Vertical space between nodes of one layer, in scene units."""
BARYCENTER_SWEEPS = 4


def layer_nodes(node_ids: list[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Group nodes into layers by longest path from a source, ordered to reduce edge crossings.

    Nodes on a cycle (an invalid document) share one layer, so a layout is still produced.
    Edges naming unknown nodes or a node itself are ignored.
    """
    known = set(node_ids)
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(node_ids)
    graph.add_edges_from((s, t) for s, t in edges if s in known and t in known and s != t)
    condensed = nx.condensation(graph)
    members: dict[int, set[str]] = {
        component: set(condensed.nodes[component]["members"]) for component in condensed.nodes
    }
    order = {node_id: index for index, node_id in enumerate(node_ids)}
    layers: list[list[str]] = []
    for generation in nx.topological_generations(condensed):
        layer = [node for component in generation for node in members[component]]
        layers.append(sorted(layer, key=order.__getitem__))
    _reduce_crossings(layers, graph)
    return layers


def _reduce_crossings(layers: list[list[str]], graph: nx.DiGraph[str]) -> None:
    """Reorder each layer by the mean position of its neighbours in the previous layers (barycenter)."""
    for sweep in range(BARYCENTER_SWEEPS):
        downward = sweep % 2 == 0
        indexes = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for layer_index in indexes:
            rank = {node: index for layer in layers for index, node in enumerate(layer)}
            layer = layers[layer_index]

            def barycenter(node: str, downward: bool = downward, rank: dict[str, int] = rank) -> float:
                neighbours = list(graph.predecessors(node) if downward else graph.successors(node))
                if not neighbours:
                    return float(rank[node])
                return sum(rank[n] for n in neighbours) / len(neighbours)

            layer.sort(key=barycenter)


def layered_positions(
    node_ids: list[str],
    edges: Iterable[tuple[str, str]],
    sizes: Mapping[str, tuple[float, float]],
) -> dict[str, tuple[float, float]]:
    """Return the top-left corner of each node for a left-to-right layered drawing.

    ``sizes`` gives (width, height) per node. Layers are columns as wide as their widest node.
    Each column is centred vertically on y=0, and the first column starts at x=0.
    """
    positions: dict[str, tuple[float, float]] = {}
    x = 0.0
    for layer in layer_nodes(node_ids, edges):
        column_width = max(sizes[node][0] for node in layer)
        column_height = sum(sizes[node][1] for node in layer) + ROW_GAP * (len(layer) - 1)
        y = -column_height / 2.0
        for node in layer:
            width, height = sizes[node]
            positions[node] = (x + (column_width - width) / 2.0, y)
            y += height + ROW_GAP
        x += column_width + LAYER_GAP
    logger.debug("laid out %d nodes", len(positions))
    return positions
