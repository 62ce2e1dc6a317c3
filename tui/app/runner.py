"""How the app runs a RunController's body: in a thread worker of a node (the app, or a screen that drives
its own run), its updates coming back to that node as RunUpdated messages."""

from __future__ import annotations

from collections.abc import Callable

from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from rnn_playground.tui.viewmodel.controller import Body, RunController, RunState

from .messages import RunUpdated


def thread_controller(node: MessagePump, on_change: Callable[[RunState], None], name: str) -> RunController:
    """A controller for `node`, which hands each RunUpdated it gets to `message.controller.receive`."""
    def launch(body: Body) -> None:
        def work() -> None:
            worker = get_current_worker()
            body(lambda: worker.is_cancelled)  # a cancelled worker (the app closing) stops and saves
        node.run_worker(work, name=name, group=name, thread=True, exit_on_error=False)

    controller = RunController(launch, lambda update: node.post_message(RunUpdated(controller, update)), on_change)
    return controller
