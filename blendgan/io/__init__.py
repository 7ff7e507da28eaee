"""Reading and writing what users bring and get: images (`images`), videos (`video`) and files written
atomically (`files`)."""
