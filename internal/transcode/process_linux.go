package transcode

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Own process group: a signal to -pid reaches ffmpeg and anything it
	// starts. Pdeathsig: if livegate dies without cleaning up, so does ffmpeg.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
