package parent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestWatch: the watcher exits once the parent process id changes, and not
// before.
func TestWatch(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(42)
	exited := make(chan struct{})
	watch(42, time.Millisecond, func() int { return int(ppid.Load()) }, func() { close(exited) })
	select {
	case <-exited:
		t.Fatal("exited while the parent was alive")
	case <-time.After(50 * time.Millisecond):
	}
	ppid.Store(1)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("did not exit within 5 s of the parent process id changing")
	}
}

// The roles of the test binary in TestDieWithFollowsTheProcess.
const roleEnv = "GOPHAS_PARENT_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "child": // dies with its parent process
		DieWith("test child")
		fmt.Println("ready")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "middle": // starts the child from a thread that exits once the child runs, and lives on
		runtime.LockOSThread() // keeps the main thread, which never exits, from starting the child
		started := make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), roleEnv+"=child")
			out, err := cmd.StdoutPipe()
			if err == nil {
				err = cmd.Start()
			}
			if err == nil {
				var l string
				if l, err = bufio.NewReader(out).ReadString('\n'); err == nil && l != "ready\n" {
					err = fmt.Errorf("child said %q", l)
				}
			}
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			started <- cmd.Process.Pid
		}()
		fmt.Println("child", <-started)
		fmt.Println("ready")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// alive reports whether process pid exists and has not exited (a zombie
// has).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(after, "Z")
}

// TestDieWithFollowsTheProcess starts a child from a thread of its parent
// that exits at once (as the JVM starts the driver from a short-lived py4j
// or task thread): the child lives on while its parent process does (the
// parent-death signal killed it here), and exits soon after the parent
// process is killed.
func TestDieWithFollowsTheProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	middle := exec.Command(os.Args[0], "-test.run=^$")
	middle.Env = append(os.Environ(), roleEnv+"=middle")
	out, err := middle.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := middle.Start(); err != nil {
		t.Fatal(err)
	}
	defer middle.Process.Kill()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("no line from the helper processes within 30 s")
			return ""
		}
	}
	got := map[string]string{}
	for range 2 {
		k, v, _ := strings.Cut(next(), " ")
		got[k] = v
	}
	pid, err := strconv.Atoi(got["child"])
	if err != nil {
		t.Fatalf("helper lines %v: want child <pid> and ready", got)
	}
	if _, ok := got["ready"]; !ok {
		t.Fatalf("helper lines %v: want child <pid> and ready", got)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)

	time.Sleep(6 * PollInterval)
	if !alive(pid) {
		t.Fatalf("the child %d died while its parent process %d lives (the thread that started it exited)", pid, middle.Process.Pid)
	}
	if err := middle.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	middle.Wait()
	deadline := time.Now().Add(10 * PollInterval)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d still runs %v after its parent process was killed", pid, 10*PollInterval)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
