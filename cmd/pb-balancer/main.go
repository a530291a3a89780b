// Command pb-balancer is ProxBalance's balancer. `plan` reads the live PVE API and Prometheus' history, computes a
// placement plan and prints it, changing nothing; `serve` runs the balancer service (webhook, plans, approval,
// migrations).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: pb-balancer <command> [flags]

commands:
  plan    compute a placement plan from the PVE API and Prometheus and print it (no side effects)
  serve   run the balancer: Alertmanager webhook, plans and approval, migrations (see -config.file)

Run "pb-balancer <command> -h" for the command's flags.
`

// run dispatches to a subcommand and returns the process exit code: 0 success, 1 failure, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "plan":
		return runPlan(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pb-balancer: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
