"""The one reading loop of the channel WebSocket protocols (podbay.api.channels): data frames
decoded in order, binary or base64 text; control frames, empty and undecodable messages skipped,
as wsstream reads them."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator

from podbay.api import remotecommand as rc
from podbay.api.channels import BINARY_FRAME, TEXT_FRAME, channel_messages

PING, CLOSE_FRAME = 0x9, 0x8


@dataclass(frozen=True)
class Frame:
    type: int
    data: object


async def frames(*items: Frame) -> AsyncIterator[Frame]:
    for item in items:
        yield item


def read(protocol: str, *items: Frame) -> list[tuple[int, bytes]]:
    async def collect() -> list[tuple[int, bytes]]:
        return [m async for m in channel_messages(frames(*items), rc.Protocol(protocol))]
    return asyncio.run(collect())


def test_binary_messages_by_channel_in_order_with_v5_close() -> None:
    assert read(rc.V5, Frame(BINARY_FRAME, b"\x00hello"), Frame(PING, b""), Frame(BINARY_FRAME, b""),
                Frame(BINARY_FRAME, b"\x04{}"), Frame(BINARY_FRAME, bytes([rc.CLOSE, rc.STDIN])),
                Frame(CLOSE_FRAME, 1000)) == [(0, b"hello"), (4, b"{}"), (rc.CLOSE, bytes([rc.STDIN]))]


def test_base64_text_messages_and_undecodable_ones_skipped() -> None:
    assert read(rc.V4_BASE64, Frame(TEXT_FRAME, "0aGk="), Frame(TEXT_FRAME, "0not base64!"),
                Frame(TEXT_FRAME, "2Ynll")) == [(0, b"hi"), (2, b"bye")]
