"""A tqdm bar made on a command's first progress event (its total is known only then) and closed
with the command: ``with Bar(disable) as bar: work(progress=bar.update)``."""


class LazyBar:
    def __init__(self, disable):
        self.disable = disable
        self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False

    def start(self, total, unit):
        """The bar, made at the first call."""
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True)
        return self.bar
