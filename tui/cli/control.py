"""`rnn-playground ctl RUN pause|resume|save|stop`: steer a run that trains in another process."""

from __future__ import annotations

from rnn_playground.core.control import ACK_TIMEOUT_S, COMMANDS, metrics_end, resolve_run, send_command, wait_for_ack

from .options import HelpFormatter

DONE = {"pause": "paused", "resume": "resumed", "save": "saving a checkpoint", "stop": "stopping, with a checkpoint"}


def register(subparsers) -> None:
    ctl = subparsers.add_parser(
        "ctl", help="pause, resume, save or stop a run training in another process",
        description="Send a command to a run that trains elsewhere (a headless `rnn-playground train`, or the "
                    "app), through its folder; the run applies it at its next step boundary and acknowledges "
                    "it. Whoever may write the run's folder may control the run.",
        formatter_class=HelpFormatter)
    ctl.add_argument("run", metavar="RUN", help="the run's folder (or its name under the runs folder)")
    ctl.add_argument("command", choices=COMMANDS, help="what to ask of it")
    ctl.add_argument("--timeout", type=float, default=ACK_TIMEOUT_S, metavar="S",
                     help="seconds to wait for the run's acknowledgement")
    ctl.set_defaults(func=cmd_ctl)


def cmd_ctl(args, console) -> int:
    run_dir = resolve_run(args.run)
    offset = metrics_end(run_dir)  # the acknowledgement comes after this
    sent = send_command(run_dir, args.command)
    ack = wait_for_ack(run_dir, sent, offset, args.timeout)
    console.print(f"Run {run_dir.name} acknowledged {args.command} at step {ack.get('step', 0):,}: "
                  f"{DONE[args.command]}.", highlight=False)
    return 0
