"""User-facing errors: each names the file (or option) and the problem in one line."""


class DS2Error(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""


class AudioError(DS2Error):
    """Audio that cannot be read: missing, corrupt, truncated, empty."""


class ManifestError(DS2Error):
    """A manifest row or file that cannot be used."""


class RecipeError(DS2Error):
    """A recipe or config value that is wrong."""


class OutputError(DS2Error):
    """An output that cannot be written: a full disk, no permission, a file where a folder should be."""
