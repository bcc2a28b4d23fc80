package server

import goruntime "runtime"

type runtimeMemStats struct{ goruntime.MemStats }

func (m *runtimeMemStats) read()             { goruntime.ReadMemStats(&m.MemStats) }
func (m *runtimeMemStats) heapInuse() uint64 { return m.HeapInuse }
