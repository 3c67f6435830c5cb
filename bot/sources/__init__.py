"""Post sources: the Jekyll reader and the watchers that turn files into `Post`s."""
