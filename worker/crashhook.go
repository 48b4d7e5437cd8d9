package worker

import "github.com/orgconn/orgconn/jobs"

// crashHook, when not nil, is called with the task id and change of every
// change a worker is about to act on. Only test builds set it (crashhook_testhooks.go, build tag
// orgconn_testhooks): production binaries have no way to crash on purpose.
var crashHook func(id string, c jobs.Change)
