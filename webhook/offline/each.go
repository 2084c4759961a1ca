package offline

// ProcessEach is Process for sources that stand alone (mutate -R and -w):
// a source with an unparsable document is left out of the result — its
// errors are in Failed, in order — and every other source is processed.
// A Rollout's workloadRef is still resolved from every document that
// parses, the left-out sources' included: what they hold is real, and a
// template label it shows is a conflict to respect.
func ProcessEach(inputs []Input, opts Options) *Result {
	docs := parse(inputs)
	failed := map[int]bool{}
	res := &Result{}
	for _, d := range docs {
		if d.parseErr != nil {
			failed[d.input] = true
			res.Failed = append(res.Failed, d.parseErr)
		}
	}
	for _, d := range docs {
		if !failed[d.input] {
			res.Docs = append(res.Docs, d)
		}
	}
	res.apply(opts, indexWorkloads(docs))
	return res
}

// File is one source after processing: its documents' Out, in order.
type File struct {
	Name string
	Data []byte
	// Docs counts its documents, Changed those written differently.
	Docs, Changed int
}

// Files are the result's sources, in input order; a source without any
// document (an empty file) has none.
func (r *Result) Files() []File {
	var files []File
	for i, d := range r.Docs {
		if i == 0 || d.input != r.Docs[i-1].input {
			files = append(files, File{Name: d.Source})
		}
		f := &files[len(files)-1]
		f.Data = append(f.Data, d.Out...)
		f.Docs++
		if d.Changed {
			f.Changed++
		}
	}
	return files
}
