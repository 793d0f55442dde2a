from conda import not_provided

Dist = not_provided("conda.models.dist.Dist")
