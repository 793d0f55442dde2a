from conda import not_provided

PrefixData = not_provided("conda.core.prefix_data.PrefixData")
