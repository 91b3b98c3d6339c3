package compare

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/smtplab/smtplab/lab/report"
)

// LoadSet reads a set of runs from path: a result.json, a run's folder
// holding one, or a folder of run folders (what `lab run --repeat N`
// makes: results/<scenario>-repeat-<time>/<run>/result.json), the runs in
// name order. Folders inside without a result.json are passed over; a
// result.json that does not load stops it, and the error names the file.
func LoadSet(path string) ([]*report.Result, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return one(path) // report.Load says what is wrong with a missing file
	}
	if _, err := os.Stat(filepath.Join(path, report.ResultFile)); err == nil {
		return one(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var runs []*report.Result
	for _, e := range entries { // ReadDir sorts by name
		file := filepath.Join(path, e.Name(), report.ResultFile)
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			continue
		}
		r, err := report.Load(file)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s: no %s in it nor in any folder inside (give a result.json, a run's folder or a folder of runs)", path, report.ResultFile)
	}
	return runs, nil
}

func one(path string) ([]*report.Result, error) {
	r, err := report.Load(path)
	if err != nil {
		return nil, err
	}
	return []*report.Result{r}, nil
}
