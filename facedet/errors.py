"""User-facing errors: raised with a one-line message the CLI and the app show as is."""


class FacedetError(Exception):
    """An error caused by the user's input (a file, a name, an option), not by a bug.

    The command line prints ``str(err)`` on one line and exits with ``exit_code``;
    the app shows it with ``st.error``.
    """

    exit_code = 2


class ImageError(FacedetError):
    """An image that cannot be read, is not an image, or is too large."""


class WeightsError(FacedetError):
    """A checkpoint that cannot be found, downloaded, verified or loaded."""


class DataError(FacedetError):
    """A data set, ground-truth or prediction file that is missing or malformed."""


class DeviceError(FacedetError):
    """A compute device (``--device``) that is unknown or not present on this machine."""


class DetectionCancelled(Exception):
    """A detection stopped by its caller (``Detector.detect``'s ``cancel``); not an error."""


class FacedetWarning(UserWarning):
    """Something the user should know that does not stop the work (a setting reduced to a limit).

    The command line prints it as one ``note: ...`` line on stderr.
    """
