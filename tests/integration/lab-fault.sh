# shellcheck shell=bash disable=SC2154
# Sourced by the integration test files that may meet the lab's own fault
# (tests/integration/lab-fault; docs/ARCHITECTURE.md, "The lab"). The file
# sets $here (this directory), $tmp (its temp dir), $forkbox_bin and
# $failed, and runs with pipefail.

# FILE shows the lab's own fault: say so, and remember it for lab_verdict.
lab_fault() { # FILE
	# pipefail: the pipeline fails when lab-fault does.
	if "$here/lab-fault" "$1" | sed 's/^/     /' >&2; then
		: >"$tmp/lab-fault"
	fi
}

# A box that stopped answering: its VMM's device and vCPU state into its
# vmm.log (forkbox debug), the log's and its console's last lines shown,
# and judged.
box_unanswered() { # BOX
	local d="${FORKBOX_HOME:-$HOME/.local/share/forkbox}/boxes/$1"
	timeout 30 "$forkbox_bin" debug "$1" >/dev/null 2>&1
	tail -n 40 "$d/vmm.log" 2>&1 | sed 's/^/     /' >&2
	lab_fault "$d/vmm.log"
	echo "     its console's end:" >&2
	tail -n 5 "$d/console.log" 2>&1 | sed 's/^/     /' >&2
}

# forkbox exec with a deadline (120 s: every command in these files takes
# seconds); a box that does not answer (125, or 124 from the deadline) is
# shown and judged.
exec_judged() { # BOX -- CMD...
	local rc=0
	timeout -k 10 120 "$forkbox_bin" exec "$@" || rc=$?
	if [ -n "$1" ] && { [ "$rc" -eq 125 ] || [ "$rc" -eq 124 ]; }; then
		echo "     exec in $1 failed ($rc); its VMM's state, vmm.log and console end:" >&2
		box_unanswered "$1"
	fi
	return "$rc"
}

# After the checks: a file whose tests failed after a lab fault ends 124,
# as a lab that broke, so tests/integration/run runs it again. A failure
# without one is still a failure.
lab_verdict() { # NAME
	if [ "$failed" -gt 0 ] && [ -e "$tmp/lab-fault" ]; then
		echo "$1: the lab's emulation lost a guest's state (lab fault above): the lab broke"
		exit 124
	fi
}
