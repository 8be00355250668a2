"""Driving a generator of steps: one way of doing a thing, made synchronously or on the event loop.

The generator yields each step (a database call, a provider call, a cache operation) and is sent its answer,
so the order and the rules live once; the caller chooses how each step is made. Used by the payment service
(bookings.services.payments) and the sandbox provider's ledger (bookings.providers.sandbox).
"""


def run_steps(steps, make=None):
    """Drive a generator of steps: each step it yields is made by `make(step)` (by default `step.run()`) and its
    answer sent back (or the exception it raised thrown in, for the steps to handle). Returns the generator's
    result."""
    make = make or _run_step

    async def made(step):
        return make(step)

    # arun_steps is the one driver: with a `make` that never awaits, its coroutine ends on its first send.
    driving = arun_steps(steps, made)
    try:
        driving.send(None)
    except StopIteration as done:
        return done.value
    driving.close()
    raise RuntimeError("a synchronous step suspended the steps")


def _run_step(step):
    return step.run()


async def arun_steps(steps, make):
    """run_steps with an async `make`, on the event loop."""
    answer, error = None, None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(answer)
        except StopIteration as done:
            return done.value
        try:
            answer, error = await make(step), None
        except Exception as raised:
            answer, error = None, raised
