"""The pure backend's codec against the byte vectors of docs/PROTOCOL.md §4."""

import unittest

from lars import _wire


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class WireVectors(unittest.TestCase):
    def test_get_host_request(self) -> None:
        datagram = _wire.get_host_request(7, 1001, 2, 42)
        self.assertEqual(datagram, hexbytes("10 01 00 00 06 00 00 00") + hexbytes("07 d2 0f 04 01 2a"))

    def test_get_host_response(self) -> None:
        reply = _wire.parse_get_host_response(hexbytes("07 d2 0f 04 00 01 00 0a 00 00 01 50"))
        self.assertEqual(reply, _wire.GetHostResponse(7, 1001, 2, _wire.SUCC, ("10.0.0.1", 80)))

    def test_report_ipv6(self) -> None:
        body = _wire.parse_frame(_wire.report(1001, 2, "2001:db8::1", 8080, 2, 1500))[1]
        self.assertEqual(body, hexbytes("d2 0f 04 01 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 90 3f 02 dc 0b"))

    def test_get_route_request_negative_modid(self) -> None:
        self.assertEqual(_wire.parse_frame(_wire.get_route_request(1, -5, 7))[1], hexbytes("01 09 0e"))

    def test_route_response(self) -> None:
        reply = _wire.parse_route_response(hexbytes("00 d2 0f 04 00 2a 02 00 0a 00 00 01 50 01 00 c0 a8 01 b1 90 3f 03"))
        self.assertEqual(reply.version, 42)
        self.assertEqual(reply.hosts, [_wire.WeightedHost("10.0.0.1", 80, 1), _wire.WeightedHost("192.168.1.177", 8080, 3)])

    def test_call_stats(self) -> None:
        entry = _wire.HostStats("10.0.0.1", 80, 180, 5, 1, False, 90000, 2500)
        body = _wire.parse_frame(_wire.call_stats(1001, 2, [entry]))[1]
        # The PROTOCOL.md vector with caller and ts 0, as a leasing client sends it.
        self.assertEqual(body, hexbytes("00 00 01 d2 0f 04 00 0a 00 00 01 50 b4 01 05 01 00 90 bf 05 c4 13"))

    def test_strict_decoding(self) -> None:
        good = hexbytes("07 d2 0f 04 00 01 00 0a 00 00 01 50")
        for bad, why in [(good[:-1], "truncated"), (good + b"\x00", "trailing bytes"), (good[:4] + b"\x07" + good[5:], "bad value")]:
            with self.assertRaisesRegex(_wire.WireError, why):
                _wire.parse_get_host_response(bad)
        with self.assertRaisesRegex(_wire.WireError, "length mismatch"):
            _wire.parse_frame(hexbytes("11 01 00 00 05 00 00 00 01"))


if __name__ == "__main__":
    unittest.main()
