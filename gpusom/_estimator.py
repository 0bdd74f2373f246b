"""scikit-learn's estimator conventions, without depending on scikit-learn: the parameter
protocol (``get_params``/``set_params``, a ``repr`` of the non-default parameters, tags) and the
feature-name checks."""

import inspect


class ParamsMixin:
    """``get_params``/``set_params`` from the constructor's signature, as ``BaseEstimator``."""

    @classmethod
    def _param_names(cls):
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return sorted(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep=True):
        """The constructor's parameters, as scikit-learn's ``BaseEstimator.get_params``.

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn; a SOM holds no sub-estimators, so it changes nothing.

        Returns
        -------
        dict
            Parameter name to value.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; they are checked when training starts, not here.

        Parameters
        ----------
        **params
            Parameter names and their new values.

        Returns
        -------
        SOM
            This SOM.
        """
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for SOM; valid parameters are: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults[name].default is inspect.Parameter.empty
            or repr(value) != repr(defaults[name].default)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):
        """Tags for scikit-learn's estimator checks; only scikit-learn calls this."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        # transform gives integer grid coordinates, whatever the input dtype.
        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=[]),
            input_tags=InputTags(allow_nan=getattr(self, "nan_policy", "raise") == "ignore"),
        )

    def _names(self):
        return getattr(self, "feature_names_in_", None)

    def _check_feature_names(self, names):
        fitted = self._names()
        if fitted is None or (len(fitted) == len(names) and (fitted == names).all()):
            return
        raise ValueError(_names_mismatch(fitted, names))


def _names_mismatch(fitted, names):
    """scikit-learn's message for feature names that differ from those seen in training."""
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    lines = ["The feature names should match those that were passed during fit."]
    if not unseen and not missing:
        lines.append("Feature names must be in the same order as they were in fit.")
    if unseen:
        lines += ["Feature names unseen at fit time:", *(f"- {name}" for name in unseen)]
    if missing:
        lines += ["Feature names seen at fit time, yet now missing:", *(f"- {n}" for n in missing)]
    return "\n".join(lines) + "\n"
