package stack

// What lab/stack's external tests (package stack_test, which can use
// lab/stack/stacktest) reach of its internals.
var (
	CompileLab = compileLab
	LabImage   = labImage
	LabRef     = labRef
	ImageLock  = imageLock
	BuildImage = buildImage
)
