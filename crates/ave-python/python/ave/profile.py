"""Resource profiles (``ave.profile``)."""

__all__ = ['Profile']


class Profile(dict):
    """Profiles are ``dict`` instances that subclasses make hashable, so that they can be
    used as indices into other dictionaries. AVE uses profiles to communicate information
    about allocatable resources.

    :arg values: A dictionary where all keys are strings.
    """

    def __init__(self, values=None):
        dict.__init__(self, values or {})

    def __hash__(self):
        raise Exception('Profile subclasses must implement __hash__()')

    def match(self, profile):
        """Match this profile against another profile or a dictionary: iterate over the
        keys in *profile* and check that *self* contains the same key with the same value.

        :arg profile: A *dict* or *Profile* instance.
        :returns: *True* if the matching succeeded, *False* otherwise.
        """
        for key in profile:
            if key not in self or self[key] != profile[key]:
                return False
        return True

    def minimize(self, profile=None):
        """Return a copy of *self* that contains the properties that are mandatory for the
        Profile subclass, plus the properties specified by *profile*. Subclasses must
        implement it."""
        raise Exception('Profile subclasses must implement minimize()')
