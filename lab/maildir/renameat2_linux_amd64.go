package maildir

// sysRenameat2 is renameat2's number (the syscall package stops before it
// on amd64).
const sysRenameat2 = 316
