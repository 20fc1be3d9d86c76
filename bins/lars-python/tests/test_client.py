"""The lars package against real daemons, on both backends, run by `cargo xtask test`
(xtask/src/clients.rs), which passes LARS_TEST_AGENT, LARS_TEST_DEAD_AGENT, LARS_TEST_ROUTES,
and LARS_TEST_MODID (see bins/lars-c/tests/client_test.c), with the package installed by pip
and liblarsclient bundled in it."""

import os
import threading
import time
import unittest
from typing import List

import lars


def env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(f"{name} is not set: run this through `cargo xtask test`")
    return value


AGENT = env("LARS_TEST_AGENT")
MODID = int(env("LARS_TEST_MODID"))
PORTS = {10001, 10002}


def add_routes(cmdid: int) -> None:
    """Adds two hosts for (MODID, cmdid) to the route file, atomically as `lars route` does."""
    path = env("LARS_TEST_ROUTES")
    with open(path) as f:
        text = f.read()
    text += "".join(f"{MODID} {cmdid} 127.0.0.1:{port}\n" for port in sorted(PORTS))
    with open(path + ".py.tmp", "w") as f:
        f.write(text)
    os.replace(path + ".py.tmp", path)


def ours(host: lars.Host) -> bool:
    return host.ip == "127.0.0.1" and host.port in PORTS


class ClientTests(unittest.TestCase):
    """Every check, for one backend (the subclasses below; this base is deleted after them so
    that unittest does not run it without one)."""

    BACKEND = ""
    CMDID = 0
    client: lars.Client

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = lars.Client(AGENT, timeout=0.2, retries=2, backend=cls.BACKEND)
        # A route added in the store is seen: absent first, then present once the file has it.
        try:
            cls.client.get_host(MODID, cls.CMDID)
            raise AssertionError("the route exists before the test added it")
        except lars.NoRoute:
            pass
        add_routes(cls.CMDID)
        deadline = time.monotonic() + 10
        while True:
            try:
                if len(cls.client.get_route(MODID, cls.CMDID).hosts) == 2:
                    break
            except lars.NoRoute:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the route added to the file never reached the client")
            time.sleep(0.05)

    def test_backend_is_the_one_asked_for(self) -> None:
        self.assertEqual(self.client.backend, self.BACKEND)

    def test_route_has_both_hosts(self) -> None:
        route = self.client.get_route(MODID, self.CMDID)
        self.assertGreater(route.version, 0)
        self.assertEqual({h.port for h in route.hosts}, PORTS)
        self.assertTrue(all(ours(h) and h.weight >= 1 for h in route.hosts))

    def test_get_host_and_report(self) -> None:
        seen = set()
        for i in range(50):
            host = self.client.get_host(MODID, self.CMDID)
            self.assertTrue(ours(host), host)
            seen.add(host.port)
            self.client.report(MODID, self.CMDID, host, lars.Outcome.FAIL if i % 10 == 0 else lars.Outcome.OK, 0.00025)
        self.assertEqual(seen, PORTS)
        self.assertTrue(ours(self.client.get_host(MODID, self.CMDID, key=42)))
        self.client.report(MODID, self.CMDID, ("127.0.0.1", 10001), lars.Outcome.OK, 0)
        self.assertEqual(len(self.client.reg_init(MODID, self.CMDID).hosts), 2)

    def test_lease(self) -> None:
        with self.client.lease(MODID, self.CMDID) as lease:
            self.assertEqual(lease.version, self.client.get_route(MODID, self.CMDID).version)
            seen = set()
            for _ in range(1000):
                host = lease.get_host()
                self.assertTrue(ours(host), host)
                seen.add(host.port)
                lease.report(host, lars.Outcome.OK, 0.00012)
            self.assertEqual(seen, PORTS)
            # A key matters under consistent hashing only (the native lease's default policy,
            # Lars, ignores it); either way the host is one of the route's.
            self.assertTrue(ours(lease.get_host(key=7)))
            lease.flush()
        with self.assertRaisesRegex(lars.InvalidArgument, "lease is"):
            lease.get_host()

    def test_many_threads(self) -> None:
        ok: List[int] = [0] * 8

        def work(t: int) -> None:
            with self.client.lease(MODID, self.CMDID) as lease:
                for _ in range(100):
                    host = self.client.get_host(MODID, self.CMDID)
                    self.client.report(MODID, self.CMDID, host, lars.Outcome.OK, 0.0001)
                    leased = lease.get_host()
                    lease.report(leased, lars.Outcome.OK, 0.0001)
                    ok[t] += ours(host) + ours(leased)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(ok, [200] * 8)

    def test_errors(self) -> None:
        with self.assertRaisesRegex(lars.NoRoute, "no such route"):
            self.client.get_host(MODID, 99)
        with self.assertRaisesRegex(lars.InvalidArgument, "modid must be an int, not str"):
            self.client.get_host("1", 1)  # type: ignore[arg-type]
        with self.assertRaisesRegex(lars.InvalidArgument, "outside the int32 range"):
            self.client.get_host(2**31, 1)
        with self.assertRaisesRegex(lars.InvalidArgument, "outcome must be a lars.Outcome"):
            self.client.report(MODID, 1, ("127.0.0.1", 1), 5, 0.0)  # type: ignore[arg-type]
        with self.assertRaisesRegex(lars.InvalidArgument, "is not an IP address"):
            self.client.report(MODID, 1, ("not-an-ip", 1), lars.Outcome.OK, 0.0)
        with self.assertRaisesRegex(lars.InvalidArgument, "latency must be"):
            self.client.report(MODID, 1, ("127.0.0.1", 1), lars.Outcome.OK, -1)
        with self.assertRaisesRegex(lars.InvalidArgument, "`localhost` is not IP:PORT"):
            lars.Client("localhost", backend=self.BACKEND)
        self.assertTrue(issubclass(lars.InvalidArgument, ValueError))

    def test_a_closed_client_says_so(self) -> None:
        with lars.Client(AGENT, backend=self.BACKEND) as client:
            self.assertTrue(ours(client.get_host(MODID, self.CMDID)))
            lease = client.lease(MODID, self.CMDID)
        with self.assertRaisesRegex(lars.InvalidArgument, "client is"):
            client.get_host(MODID, self.CMDID)
        self.assertTrue(ours(lease.get_host()), "a lease outlives its client")
        lease.close()

    def test_dead_agent_is_a_timeout(self) -> None:
        gone = lars.Client(env("LARS_TEST_DEAD_AGENT"), timeout=0.05, retries=1, backend=self.BACKEND)
        with self.assertRaisesRegex(lars.Timeout, "no answer from the agent"):
            gone.get_host(MODID, self.CMDID)
        with self.assertRaises(TimeoutError):
            gone.get_route(MODID, self.CMDID)


class Packaging(unittest.TestCase):
    def test_the_installed_package_is_used_with_its_bundled_library(self) -> None:
        self.assertIn("site-packages", lars.__file__)
        found = lars.native_library()
        self.assertIsNotNone(found)
        self.assertEqual(os.path.dirname(str(found)), os.path.dirname(lars.__file__))
        self.assertEqual(lars.Client(AGENT).backend, "native")

    def test_without_the_library_auto_falls_back_to_pure(self) -> None:
        saved = os.environ.get("LARS_LIBRARY")
        os.environ["LARS_LIBRARY"] = "/nonexistent/liblarsclient.so"
        try:
            self.assertIsNone(lars.native_library())
            self.assertEqual(lars.Client(AGENT).backend, "pure")
        finally:
            if saved is None:
                del os.environ["LARS_LIBRARY"]
            else:
                os.environ["LARS_LIBRARY"] = saved


class Native(ClientTests):
    BACKEND = "native"
    CMDID = 1


class Pure(ClientTests):
    BACKEND = "pure"
    CMDID = 2

    def test_the_pure_lease_sets_aside_a_failing_host(self) -> None:
        # The native lease runs the Lars policy (tested in Rust); the pure one its simple rule.
        with self.client.lease(MODID, self.CMDID) as lease:
            bad = lease.get_host()
            for _ in range(15):
                lease.report(bad, lars.Outcome.FAIL, 0.001)
            picked = {lease.get_host().port for _ in range(50)}
            self.assertEqual(picked, PORTS - {bad.port})
            good = lease.get_host()
            for _ in range(15):
                lease.report(good, lars.Outcome.OVERLOAD, 0.001)
            with self.assertRaisesRegex(lars.Overloaded, "every host of the route is overloaded"):
                lease.get_host()


del ClientTests

if __name__ == "__main__":
    unittest.main()
