"""What the parsers' hypothesis tests share: valid inputs damaged the ways real transports and attackers do."""

from hypothesis import strategies as st


def mutator(pieces: st.SearchStrategy[bytes]):
    """A strategy factory: ``mutated(base)`` draws a valid input from ``base`` and damages it one to four
    times (truncated, a byte flipped, bytes inserted or deleted, a run repeated, or one of ``pieces``, the
    format's own syntax, inserted)."""

    @st.composite
    def mutated(draw, base: st.SearchStrategy[bytes]) -> bytes:
        data = bytearray(draw(base))
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(data)))
            kind = draw(st.sampled_from(["truncate", "flip", "insert", "piece", "delete", "repeat"]))
            if kind == "truncate":
                del data[position:]
            elif kind == "flip" and position < len(data):
                data[position] ^= draw(st.integers(1, 255))
            elif kind == "insert":
                data[position:position] = draw(st.binary(min_size=1, max_size=16))
            elif kind == "piece":
                data[position:position] = draw(pieces)
            elif kind == "delete":
                del data[position : position + draw(st.integers(1, 64))]
            elif kind == "repeat":
                data[position:position] = data[position : position + draw(st.integers(1, 64))] * draw(
                    st.integers(2, 50)
                )
        return bytes(data)

    return mutated
