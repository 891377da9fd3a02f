"""rio.AsyncFile on both backends: many tasks on one file at once through
one queue per event loop (no thread per operation), round trips, EOF,
errors as the blocking API's OSError subclasses, cancellation while in
flight keeping the buffer alive until the completion is reaped, close
waiting for operations in flight, durable writes."""

from __future__ import annotations

import asyncio
import errno
import gc
import random
import re
import threading
import weakref

import pytest

import rio


def run(coro):
    return asyncio.run(coro)


def pattern(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def open_direct_or_skip(rt, p):
    """An O_DIRECT AsyncFile on ``p`` (from a running loop), or a skip where
    the filesystem has no O_DIRECT."""
    try:
        return rt.open_async(p, "w+", direct=True)
    except OSError as e:
        if e.errno == errno.EINVAL:
            pytest.skip("no O_DIRECT on this filesystem")
        raise


class WeakBuf(bytearray):
    """A bytearray that can be watched with a weak reference."""


def test_round_trip_and_all_calls(rt, path):
    async def main():
        async with rt.open_async(path, "w+") as f:
            assert isinstance(f, rio.AsyncFile)
            data = pattern(1, 10000)
            assert await f.write_at(data, 0) == 10000
            assert await f.write_at(memoryview(data)[:100], 20000) == 100
            await f.sync()
            await f.datasync()
            assert f.size() == 20100
            assert await f.read_at(10000, 0) == data
            buf = bytearray(5000)
            assert await f.readinto_at(buf, 5000) == 5000
            assert bytes(buf) == data[5000:]
            mv = memoryview(bytearray(100))
            assert await f.readinto_at(mv, offset=20000) == 100
            assert bytes(mv) == data[:100]
            assert await f.read_at(0, 0) == b""
            # Short only at end of file.
            assert await f.read_at(500, 20000) == data[:100]
            assert await f.read_at(10, 1 << 30) == b""
        assert f.closed
        with pytest.raises(ValueError):
            await f.read_at(1, 0)

    run(main())


def test_many_tasks_on_one_file_with_no_thread_per_operation(rt, path):
    blocks = 256
    with rt.open(path, "w") as f:
        for i in range(blocks):
            f.write_at(pattern(i, 4096), i * 4096)

    async def main():
        threads_before = threading.active_count()
        async with rt.open_async(path, "r") as f:
            results = await asyncio.gather(*(f.read_at(4096, i * 4096) for i in range(blocks)))
            assert threading.active_count() == threads_before, "a thread was started for the operations"
        for i, got in enumerate(results):
            assert got == pattern(i, 4096), f"block {i}"

    run(main())
    # They were in flight together: a queue sample of more than 64 ops in flight.
    text = rt.metrics_prometheus()
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r'rio_queue_ops_in_flight_bucket\{le="([^"]+)"\} (\d+)', text)}
    assert counts["+Inf"] > counts["64"], text


def test_writes_from_many_tasks_then_read_back(rt, path):
    async def main():
        async with rt.open_async(path, "w+") as f:
            async def writer(i):
                await f.write_at(pattern(i, 1000), i * 1000)

            await asyncio.gather(*(writer(i) for i in range(500)))  # more than the queue's depth
            await f.datasync()
            back = await f.read_at(500 * 1000, 0)
        assert back == b"".join(pattern(i, 1000) for i in range(500))

    run(main())


def test_errors_are_the_blocking_apis_oserror_subclasses(rt, path, tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            rt.open_async(tmp_path / "missing", "r")
        async with rt.open_async(path, "w") as f:  # write-only
            with pytest.raises(OSError) as e:
                await f.read_at(10, 0)
            assert e.value.errno == errno.EBADF
            assert e.value.filename == str(path)
            # The other ops of the file are not disturbed.
            assert await f.write_at(b"abc", 0) == 3
        with pytest.raises(TypeError):
            async with rt.open_async(path, "r+") as f:
                await f.readinto_at(b"read-only", 0)

    run(main())


def test_direct_io_alignment_errors_and_aligned_reads(rt, tmp_path):
    p = tmp_path / "direct.bin"

    async def main():
        async with open_direct_or_skip(rt, p) as f:
            buf = rio.alloc_buffer(8192)
            buf[:] = pattern(3, 8192)
            assert await f.write_at(buf, 0) == 8192
            with pytest.raises(OSError) as e:
                await f.write_at(buf[1:4097], 0)
            assert e.value.errno == errno.EINVAL
            assert "O_DIRECT" in str(e.value)
            assert await f.read_at(4096, 4096) == pattern(3, 8192)[4096:]

    run(main())


def test_cancelled_task_keeps_the_buffer_until_the_completion_is_reaped(rt, path):
    size = 8 << 20
    with rt.open(path, "w") as f:
        f.write_at(pattern(7, 4096) * (size // 4096), 0)

    async def main():
        async with rt.open_async(path, "r") as f:
            for attempt in range(50):
                buf = WeakBuf(size)
                watch = weakref.ref(buf)
                task = asyncio.ensure_future(f.readinto_at(buf, 0))
                # The task awaits its op in this loop iteration; the op is
                # pushed and submitted at the end of the next.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                if task.done():
                    continue  # completed before it could be cancelled: try again
                task.cancel()
                del buf
                gc.collect()
                with pytest.raises(asyncio.CancelledError):
                    await task
                if watch() is None:
                    # Legal only if the op completed and was reaped meanwhile.
                    continue
                # In flight (or complete, not reaped): still referenced.
                gc.collect()
                assert watch() is not None
                # Once the queue reaps it, the buffer goes.
                for _ in range(1000):
                    await asyncio.sleep(0.001)
                    gc.collect()
                    if watch() is None:
                        break
                assert watch() is None, "the buffer of a reaped op is never released"
                return
            pytest.fail("every read finished before it could be cancelled")

    run(main())


def test_ops_cancelled_before_their_push_are_never_pushed(rt, path):
    with rt.open(path, "w") as f:
        f.write_at(pattern(8, 1 << 16), 0)

    async def main():
        async with rt.open_async(path, "r") as f:
            q = f._queue
            bufs = [bytearray(4096) for _ in range(8)]
            tasks = [asyncio.ensure_future(f.readinto_at(b, i * 4096)) for i, b in enumerate(bufs)]
            await asyncio.sleep(0)  # every task awaits its op; none is pushed yet
            assert q.in_queue == 0 and len(q.waiting) == 8
            for t in tasks[::2]:
                t.cancel()
            await asyncio.sleep(0)  # the push at the end of that iteration
            # Only the four live ops reached the queue; the cancelled ones
            # were dropped with their buffers.
            assert not q.waiting
            assert q.in_queue <= 4 and len(q.ops) <= 4
            assert not any(e[0].cancelled() for e in q.ops.values())
            results = await asyncio.gather(*tasks, return_exceptions=True)
            whole = pattern(8, 1 << 16)
            for i, r in enumerate(results):
                if i % 2:
                    assert r == 4096 and bytes(bufs[i]) == whole[i * 4096 : (i + 1) * 4096]
                else:
                    assert isinstance(r, asyncio.CancelledError)
            assert q.in_queue == 0 and not q.ops

    run(main())


def test_a_bad_op_in_a_batch_fails_alone(rt, tmp_path):
    p = tmp_path / "direct-batch.bin"

    async def main():
        async with open_direct_or_skip(rt, p) as f:
            buf = rio.alloc_buffer(4096 * 9)
            buf[:] = pattern(9, 4096 * 9)
            # Pushed together in one loop iteration; the misaligned one is
            # refused by the library and only its task sees the error.
            offsets = [i * 4096 for i in range(8)]
            aligned = [f.write_at(buf[o : o + 4096], o) for o in offsets]
            results = await asyncio.gather(*aligned[:4], f.write_at(buf[1:4097], 0), *aligned[4:], return_exceptions=True)
            assert isinstance(results[4], OSError) and results[4].errno == errno.EINVAL
            assert "O_DIRECT" in str(results[4])
            assert results[:4] + results[5:] == [4096] * 8
            assert await f.read_at(8 * 4096, 0) == bytes(buf[: 8 * 4096])

    run(main())


def test_close_waits_for_operations_in_flight(rt, path):
    with rt.open(path, "w") as f:
        f.write_at(pattern(2, 1 << 20), 0)

    async def main():
        f = rt.open_async(path, "r")
        bufs = [bytearray(1 << 16) for _ in range(16)]
        tasks = [asyncio.ensure_future(f.readinto_at(b, i << 16)) for i, b in enumerate(bufs)]
        await asyncio.sleep(0)
        for t in tasks[::2]:
            t.cancel()
        await f.close()
        # Every op completed before close returned: the data is there before
        # the tasks even resume.
        whole = pattern(2, 1 << 20)
        for i in range(1, 16, 2):
            assert bytes(bufs[i]) == whole[i << 16 : (i + 1) << 16], f"op {i} not complete at close"
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(results):
            if i % 2:
                assert r == 1 << 16
            else:
                assert isinstance(r, asyncio.CancelledError)
        await f.close()  # idempotent

    run(main())


def test_one_queue_per_loop_and_files_on_two_loops(rt, path):
    with rt.open(path, "w") as f:
        f.write_at(b"x" * 100, 0)

    async def on_a_loop():
        async with rt.open_async(path) as a, rt.open_async(path) as b:
            assert a._queue is b._queue
            return await a.read_at(10, 0) + await b.read_at(10, 90)

    assert run(on_a_loop()) == b"x" * 20
    # A second loop (in another thread) gets its own queue.
    got = []
    t = threading.Thread(target=lambda: got.append(run(on_a_loop())))
    t.start()
    t.join()
    assert got == [b"x" * 20]


def test_write_durable(rt, path):
    async def main():
        async with rt.open_async(path, "w+") as f:
            data = pattern(5, 12345)
            assert await f.write_durable(data, 100) == 12345
            assert await f.read_at(12345, 100) == data
            assert f.size() == 12445

    run(main())
