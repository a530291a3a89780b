package executor

import "time"

// Progress is how far a migration is, read from its task log.
type Progress struct {
	// Percent is 0..100 over everything to copy (local disks and memory).
	Percent float64 `json:"percent"`
	// TransferredBytes and TotalBytes sum the disk mirrors and the VM state.
	TransferredBytes uint64 `json:"transferred_bytes"`
	TotalBytes       uint64 `json:"total_bytes"`
	// BytesPerSecond is the last speed QEMU reported, else the average so far (0 when unknown).
	BytesPerSecond float64 `json:"bytes_per_second"`
	// Elapsed is since the task started.
	Elapsed time.Duration `json:"elapsed"`
	// Phase is "starting", "disks", "memory" or "finishing".
	Phase string `json:"phase"`
	// Disks has one entry per mirrored drive, in log order.
	Disks []DiskProgress `json:"disks,omitempty"`
}

// DiskProgress is one drive mirror's progress.
type DiskProgress struct {
	Drive            string  `json:"drive"`
	TransferredBytes uint64  `json:"transferred_bytes"`
	TotalBytes       uint64  `json:"total_bytes"`
	Percent          float64 `json:"percent"`
}

// ParseProgress reads a migration task log (lines in order) into its progress. Elapsed is left zero: the log
// does not say when it was read.
func ParseProgress(lines []string) Progress {
	return Progress{}
}
