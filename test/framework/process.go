package framework

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Process.Stop waits after SIGTERM before it
// kills the process.
const DefaultStopTimeout = 10 * time.Second

// Process is a child process whose standard output and error go to a log
// file. It runs in a process group of its own, so that a Ctrl-C in the
// terminal reaches only the program that started it, which then stops its
// children in order; on Linux it is also killed if that program dies.
type Process struct {
	// Name names the process in messages, e.g. "injector".
	Name string
	// LogPath is the file with its standard output and error.
	LogPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // the exit status; set before done is closed
}

// StartProcess starts cmd with its output appended to logPath. cmd must not
// have been started and must not set Stdout, Stderr or SysProcAttr.
func StartProcess(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log of %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to timeout (DefaultStopTimeout if 0) for
// the process to exit, then kills it. It returns the exit status: nil for a
// clean exit, an error for a non-zero exit or a kill. Stopping a process
// that has exited returns how it exited.
func (p *Process) Stop(timeout time.Duration) error {
	if timeout == 0 {
		timeout = DefaultStopTimeout
	}
	select {
	case <-p.done:
		return p.exitError()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitError()
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", p.Name, timeout)
}

func (p *Process) exitError() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.Name, p.err)
	}
	return nil
}

// Log returns the last maxLines lines of the process's log (all if
// maxLines <= 0).
func (p *Process) Log(maxLines int) string {
	return tailFile(p.LogPath, maxLines)
}

// tailFile returns the last maxLines lines of the file at path, or a note
// saying why it cannot.
func tailFile(path string, maxLines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return "(empty)"
	}
	lines := strings.Split(string(data), "\n")
	if maxLines > 0 && len(lines) > maxLines {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-maxLines, path)}, lines[len(lines)-maxLines:]...)
	}
	return strings.Join(lines, "\n")
}
