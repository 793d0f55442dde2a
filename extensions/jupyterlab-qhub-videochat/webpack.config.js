// Merged by @jupyter/builder into its config (package.json: jupyterlab.webpackConfig).
// The module federation container's id is by default a hash of its identifier, which holds the
// absolute paths of the exposed modules: the build would depend on where the repo is checked out.
// Numbering modules in their (path-independent) order keeps the build byte-for-byte reproducible.
module.exports = {
  optimization: {
    moduleIds: 'natural'
  }
};
